"""What ``menet-tf bench`` prints (a short Markdown table with the roofline columns, the peaks
behind them, and the lines that place them) and writes (every figure as JSON)."""
import os

from menet_tf import files
from menet_tf.bench.goals import GB_OVER_MSE_GOAL
from menet_tf.bench.keys import keys_of
from menet_tf.infer.precision import PRECISIONS as PEAK_PRECISIONS

# role (menet_tf.bench.keys), label, unit, factor
ROWS = (
    ("train", "training step, batch {train_batch} of {train_size}", "s/step", 1),
    ("train_logs", "  same, authors' step also logging SSIM", "s/step", 1),
    ("train_mse", "  same, MSE-only model", "s/step", 1),
    ("infer_one", "inference, {infer_size}x{infer_size}, batch 1", "ms/img", 1000),
    ("infer_batch", "inference, {infer_size}x{infer_size}, batch {infer_batch}", "ms/img", 1000),
    ("infer_large", "inference, one {large_w}x{large_h} image (padded)", "ms/img", 1000),
)


def format_table(result):
    """A short Markdown table (port vs authors, ratios, achieved GFLOP/s and share of peak),
    the peaks table, and the lines that place them."""
    parts = [_table(result), ""]
    if result.get("roofline"):
        parts += [_peaks_table(result["roofline"]), ""]
    return "\n".join([*parts, *_context(result)])


def _port_label(st):
    backend = st.get("backend", "tensorflow")
    return f"menet-tf ({st['precision']}{', OpenVINO' if backend == 'openvino' else ''})"


ROOFLINE_HEAD = "GFLOP/s (% of peak: wall / CPU time)"


def _roofline_cell(row):
    """"123 (45% / 50%)": GFLOP/s and its share of the peak of its precision, by wall and by CPU
    time; "-" when not measured."""
    if not row:
        return "-"
    shares = [row.get("share_of_peak"), row.get("share_of_peak_cpu")]
    if shares[0] is None:
        return f"{row['gflops']:.0f}"
    return f"{row['gflops']:.0f} (" + " / ".join(
        "-" if x is None else f"{x:.0%}" for x in shares) + ")"


def _table(result):
    """One row per figure: the authors' graph, the port, the speed-ups, the port's spread."""
    st = result["settings"]
    fill = dict(train_batch=st["training"]["batch"], train_size=st["training"]["size"],
                infer_size=st["inference"]["size"], infer_batch=st["inference"]["batches"][1],
                large_h=st["inference"]["large_image"][0], large_w=st["inference"]["large_image"][1])
    theirs = result.get("authors_graph") or {}
    rows = (result.get("roofline") or {}).get("rows")
    head = ["", "authors' graph (fp32)", _port_label(st), "speed-up (wall)", "(CPU time)",
            "spread"]
    if rows is not None:
        head[2:2] = [ROOFLINE_HEAD]
        head[4:4] = [ROOFLINE_HEAD]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    keys = keys_of(st)
    for role, label, unit, factor in ROWS:
        key = keys[role]
        port_key = keys["train"] if role == "train_logs" else key
        port = result["port"].get(port_key)
        if role == "train_logs" and key not in theirs:
            continue
        if port is None:
            continue
        value = lambda r: f"{r['per_item_s'] * factor:.3g} {unit}"  # noqa: E731
        ratio = result["ratios"].get(key)
        wall = "%.2fx" % ratio["wall"] if ratio else "-"
        cpu_ratio = "%.2fx" % ratio["cpu"] if ratio else "-"
        authors = value(theirs[key]) if key in theirs else "-"
        cells = [label.format(**fill), authors, value(port), wall, cpu_ratio,
                 f"{port['spread']:.0%}"]
        if rows is not None:
            cells[2:2] = [_roofline_cell((rows.get(key) or {}).get("authors"))]
            cells[4:4] = [_roofline_cell((rows.get(port_key) or {}).get("port"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _peaks_table(roofline):
    """The practical peaks the shares are of, one column per precision."""
    peaks = roofline["peaks"]
    shapes = peaks["shapes"]
    measured = [p for p in PEAK_PRECISIONS if p in peaks["precisions"]]
    n = shapes["matmul"][0]
    conv = "x".join(str(d) for d in shapes["conv_input"])
    lines = ["| practical peak, GFLOP/s | " + " | ".join(measured) + " |",
             "|---|" + "---|" * len(measured)]
    for kind, label in (("matmul", f"matrix product {n}x{n}x{n}"),
                        ("conv", f"3x3 convolution 64->64 on [{conv}]")):
        cells = [f"{peaks['precisions'][p][kind]['gflops']:.0f}" for p in measured]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| **peak** (the higher) | "
                 + " | ".join(f"**{peaks['precisions'][p]['peak_gflops']:.0f}**" for p in measured)
                 + " |")
    per_cpu = [peaks["precisions"][p].get("peak_gflops_per_cpu_second") for p in measured]
    if any(v is not None for v in per_cpu):
        lines.append("| peak per CPU second (the higher) | "
                     + " | ".join("-" if v is None else f"{v:.0f}" for v in per_cpu) + " |")
    return "\n".join(lines)


def _context(result):
    """The lines that place the table: the multi-task cost, the pipeline, memory, the machine,
    the rounds, the goals and the notes."""
    st = result["settings"]
    gb = result["gb_over_mse"]
    m = result["machine"]
    cpu = m["cpu"]
    text = []
    if gb is not None:
        text.append(f"MENET-GB step / MSE-only step: {gb['wall']:.3f} (wall), {gb['cpu']:.3f}"
                    f" (CPU time); goal <= {GB_OVER_MSE_GOAL}")
    if result.get("roofline"):
        text += _flops_lines(result["roofline"], st)
    if result.get("pipeline"):
        p = result["pipeline"]
        text.append(f"input pipeline: {p['crops_per_s']:.0f} crops/s (batch {p['batch_size']},"
                    f" {p['crop_size']}x{p['crop_size']}, {p['pairs']} pairs)")
    text.append(f"peak memory: {result['memory']['peak_rss_mb']:.0f} MB resident"
                + (f", GPU {result['memory']['gpu_peak_mb']:.0f} MB" if "gpu_peak_mb" in result["memory"] else ""))
    openvino = f" (OpenVINO {m.get('openvino')})" if st.get("backend") == "openvino" else ""
    text.append(
        f"machine: {m['device']}, {cpu['model']}, {cpu['logical_cpus']} logical CPUs,"
        f" AVX-512 {'yes' if cpu['avx512'] else 'no'} (bf16 {'yes' if cpu['avx512_bf16'] else 'no'}),"
        f" AMX {'yes' if cpu['amx'] else 'no'}; TensorFlow {m['versions']['tensorflow']},"
        f" Keras {m['versions']['keras']};"
        f" oneDNN {'on' if m.get('onednn') else 'off'}; XLA {'on' if st['jit_compile'] else 'off'},"
        f" {st['precision']}{openvino},"
        f" conv gradients {st.get('conv_gradient', 'native')};"
        f" load average {result['load_average_start']} -> {result['load_average_end']}")
    text.append(f"{st['repeats']} timed rounds after {st['warmup_rounds']} warm-up, interleaved;"
                " medians; spread = (max - min) / median of the port's wall times")
    for g in result["goals"]:
        if g["met"] is not None:
            text.append(f"goal: {g['goal']}: {g['measured_wall']} (wall) -> {'met' if g['met'] else 'NOT met'}")
    text += [f"note: {n}" for n in result["notes"]]
    return text


def _flops_lines(roofline, st):
    """What the GFLOP/s columns divide: the FLOPs counted from the model's traced graphs."""
    flops = roofline["flops"]
    train = keys_of(st)["train"]
    text = [f"FLOPs (dense: convolutions, 2 per multiply-add, counted from the traced graph):"
            f" {roofline['forward_224_flops'] / 1e9:.2f} GFLOP per 224x224 forward pass"]
    if train in flops:
        t = st["training"]
        step = flops[train]["dense"]
        forward = flops["forward_train_batch"]["dense"]
        text[-1] += (f", {step / 1e9:.0f} GFLOP per MENET-GB training step (batch {t['batch']}"
                     f" of {t['size']}x{t['size']}; {step / forward:.2f}x its forward pass)")
    text.append("GFLOP/s = FLOPs / median wall seconds; % of peak = of the practical peak of the"
                " precision it ran in (authors' graph: fp32), measured in this run; by CPU time:"
                " FLOPs per CPU second over the peak's (steadier on a busy machine)")
    return text


def write_json(result, path):
    """Write ``result`` to ``path`` atomically (menet_tf.files), creating its folder."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    files.write_json(path, result)
    return path
