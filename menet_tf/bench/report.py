"""What ``menet-tf bench`` prints (a short Markdown table and the lines that place it) and
writes (every figure as JSON)."""
import os

from menet_tf import files
from menet_tf.bench.speed import GB_OVER_MSE_GOAL

ROWS = (
    ("train_b20", "training step, batch {train_batch} of {train_size}", "s/step", 1),
    ("train_logs_b20", "  same, authors' step also logging SSIM", "s/step", 1),
    ("train_mse_b20", "  same, MSE-only model", "s/step", 1),
    ("infer_b1", "inference, {infer_size}x{infer_size}, batch 1", "ms/img", 1000),
    ("infer_b20", "inference, {infer_size}x{infer_size}, batch {infer_batch}", "ms/img", 1000),
    ("infer_large", "inference, one {large_w}x{large_h} image (padded)", "ms/img", 1000),
)


def format_table(result):
    """A short Markdown table (port vs authors, ratios) and the lines that place it."""
    return "\n".join([_table(result), "", *_context(result)])


def _table(result):
    """One row per figure: the authors' graph, the port, the speed-ups, the port's spread."""
    st = result["settings"]
    fill = dict(train_batch=st["training"]["batch"], train_size=st["training"]["size"],
                infer_size=st["inference"]["size"], infer_batch=st["inference"]["batches"][1],
                large_h=st["inference"]["large_image"][0], large_w=st["inference"]["large_image"][1])
    theirs = result.get("authors_graph") or {}
    lines = ["| | authors' graph | menet-tf | menet-tf speed-up (wall) | (CPU time) | spread |",
             "|---|---|---|---|---|---|"]
    for key, label, unit, factor in ROWS:
        port = result["port"].get("train_b20" if key == "train_logs_b20" else key)
        if key == "train_logs_b20" and key not in theirs:
            continue
        if port is None:
            continue
        value = lambda r: f"{r['per_item_s'] * factor:.3g} {unit}"  # noqa: E731
        ratio = result["ratios"].get(key)
        wall = "%.2fx" % ratio["wall"] if ratio else "-"
        cpu_ratio = "%.2fx" % ratio["cpu"] if ratio else "-"
        authors = value(theirs[key]) if key in theirs else "-"
        lines.append(
            f"| {label.format(**fill)} | {authors} | {value(port)} | {wall} | {cpu_ratio} |"
            f" {port['spread']:.0%} |"
        )
    return "\n".join(lines)


def _context(result):
    """The lines that place the table: the multi-task cost, the pipeline, memory, the machine,
    the rounds, the goals and the notes."""
    st = result["settings"]
    gb = result["gb_over_mse"]
    m = result["machine"]
    cpu = m["cpu"]
    text = [
        f"MENET-GB step / MSE-only step: {gb['wall']:.3f} (wall), {gb['cpu']:.3f} (CPU time);"
        f" goal <= {GB_OVER_MSE_GOAL}",
    ]
    if result.get("pipeline"):
        p = result["pipeline"]
        text.append(f"input pipeline: {p['crops_per_s']:.0f} crops/s (batch {p['batch_size']},"
                    f" {p['crop_size']}x{p['crop_size']}, {p['pairs']} pairs)")
    text.append(f"peak memory: {result['memory']['peak_rss_mb']:.0f} MB resident"
                + (f", GPU {result['memory']['gpu_peak_mb']:.0f} MB" if "gpu_peak_mb" in result["memory"] else ""))
    text.append(
        f"machine: {m['device']}, {cpu['model']}, {cpu['logical_cpus']} logical CPUs,"
        f" AVX-512 {'yes' if cpu['avx512'] else 'no'} (bf16 {'yes' if cpu['avx512_bf16'] else 'no'}),"
        f" AMX {'yes' if cpu['amx'] else 'no'}; TensorFlow {m['tensorflow']}, Keras {m['keras']};"
        f" oneDNN {'on' if m.get('onednn') else 'off'}; XLA {'on' if st['jit_compile'] else 'off'},"
        f" {st['precision']}, conv gradients {st.get('conv_gradient', 'native')};"
        f" load average {result['load_average_start']} -> {result['load_average_end']}")
    text.append(f"{st['repeats']} timed rounds after {st['warmup_rounds']} warm-up, interleaved;"
                " medians; spread = (max - min) / median of the port's wall times")
    for g in result["goals"]:
        if g["met"] is not None:
            text.append(f"goal: {g['goal']}: {g['measured_wall']} (wall) -> {'met' if g['met'] else 'NOT met'}")
    text += [f"note: {n}" for n in result["notes"]]
    return text


def write_json(result, path):
    """Write ``result`` to ``path`` atomically (menet_tf.files), creating its folder."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    files.write_json(path, result)
    return path
