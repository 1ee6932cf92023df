"""A table run's results as the paper's table: ``table.csv`` for programs, ``table.md`` for people.

Our numbers stand beside the paper's with their difference, so that a reproduction is judged
row by row; the rainy input's own scores are listed too, and every model is checked to improve
on them, because a model that does not de-rain can still land near the paper's figure.
"""
import csv
import io
import math
import os

from menet_tf.evaluation.protocols import DESCRIPTIONS, PROTOCOLS
from menet_tf.evaluation.scoring import format_score, read_number
from menet_tf.files import write_all

COLUMNS = ["id", "label", "model", "psnr", "ssim", "paper_psnr", "paper_ssim", "diff_psnr",
           "diff_ssim", "y_psnr", "y_ssim", "rgb_psnr", "rgb_ssim", "beats_input", "steps",
           "train_seconds", "status"]
QUICK_WARNING = ("**Quick-run numbers, not the paper's setting.** {note}. They show that the "
                 "pipeline works and how the rows compare after a short run; the paper's "
                 "figures need the full runs (`make ablation`).")
HEADER = ["| row | model | PSNR | SSIM | paper PSNR | paper SSIM | Δ PSNR | Δ SSIM | Y PSNR | "
          "Y SSIM | beats rainy input | steps | training |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---:|---:|"]


# ----------------------------------------------------------------------------------------------
# numbers as the table shows them

def _f(value, digits=2):
    value = read_number(value)
    return "-" if value is None else format_score(value, digits)


def _signed(value, digits=2):
    if value is None:
        return "-"
    return f"{value:+.{digits}f}"


def _duration(seconds):
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


# ----------------------------------------------------------------------------------------------
# rows

def table_rows(results, dataset):
    """One dict per row with our numbers, the paper's and their differences (None if absent)."""
    rows = []
    for r in results:
        row, s = r["row"], r.get("summary") or {}
        paper = (row.get("paper") or {}).get(dataset or "", {})
        a, y, rgb = s.get("authors", {}), s.get("y", {}), s.get("rgb", {})
        psnr, ssim = read_number(a.get("psnr")), read_number(a.get("ssim"))
        out = {"id": row["id"], "label": row["label"], "model": r["config"].name,
               "psnr": psnr, "ssim": ssim,
               "paper_psnr": paper.get("psnr"), "paper_ssim": paper.get("ssim"),
               "diff_psnr": None, "diff_ssim": None,
               "y_psnr": read_number(y.get("psnr")), "y_ssim": read_number(y.get("ssim")),
               "rgb_psnr": read_number(rgb.get("psnr")), "rgb_ssim": read_number(rgb.get("ssim")),
               "beats_input": None, "steps": (r.get("run") or {}).get("steps"),
               "train_seconds": (r.get("run") or {}).get("seconds"),
               "status": "skipped: " + r["skip"] if r.get("skip") else "done"}
        if psnr is not None and paper:
            out["diff_psnr"] = psnr - paper["psnr"]
            out["diff_ssim"] = ssim - paper["ssim"]
        if psnr is not None:
            out["beats_input"] = beats_input(s)
        rows.append(out)
    return rows


def beats_input(summary):
    """Does the model's PSNR beat the rainy input's under every protocol where the input's is
    finite? (With small crops some rainy crops hold no rain at all: tf.image.psnr gives them
    inf, and so the authors' mean for the input is inf too.)"""
    checked = []
    for protocol in PROTOCOLS:
        entry = summary.get(protocol)
        if entry and math.isfinite(read_number(entry["input_psnr"])):
            checked.append(read_number(entry["psnr"]) > read_number(entry["input_psnr"]))
    return bool(checked) and all(checked)


def _input_scores(results):
    """The rainy input's (psnr, ssim) per protocol: the same for every row (one test set)."""
    for r in results:
        s = r.get("summary")
        if s:
            return {p: (s[p].get("input_psnr"), s[p].get("input_ssim")) for p in PROTOCOLS
                    if p in s}
    return {}


# ----------------------------------------------------------------------------------------------
# table.csv and table.md

def write_table(results, meta, runs):
    """table.md and table.csv in ``runs`` (each written whole, then moved into place)."""
    rows = table_rows(results, meta["dataset"])
    write_all({os.path.join(runs, "table.csv"): _csv(rows)})
    md = (_preamble(meta) + _body(rows, results, meta) + _verdict(rows)
          + _notes(results, meta))
    write_all({os.path.join(runs, "table.md"): "\n".join(md)})
    return rows


def _csv(rows):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else (f"{v:.6f}" if isinstance(v, float) else v))
                         for k, v in row.items()})
    return buf.getvalue()


def _preamble(meta):
    """Title, the quick-run and synthetic-data warnings, and what was trained and scored on."""
    spec, dataset = meta["spec"], meta["dataset"]
    md = [f"# {spec['title']}", ""]
    if meta["quick"]:
        md += ["> " + QUICK_WARNING.format(note=spec["quick"].get(
            "note", "small crops, few steps").rstrip(".")), ""]
    if meta["synthetic"]:
        md += ["> Trained and scored on the **synthetic** light-rain set (the real Rain100L "
               "copy was not found): no paper numbers apply.", ""]
    where = dataset or ("this data set (not recognised as Rain100H/L: no paper numbers; "
                        "pass --dataset)")
    md += [f"Trained on `{meta['train']}`, scored on `{meta['test']}`, the data's "
           f"{meta.get('test_split', 'test/')} ({where}). "
           f"Paper: {spec.get('source', '')}.", ""]
    return md


def _label(row, result, dataset):
    """The paper's label; † marks the rows the authors' own Rain100H log swaps."""
    if not result["row"].get("swapped_in_authors_log"):
        return row["label"]
    return row["label"] + (" †" if dataset == "Rain100H" else " (†)")


def _body(rows, results, meta):
    """The table: one line per row, the paper-only reference rows, then the rainy input."""
    dataset = meta["dataset"]
    md = list(HEADER)
    for row, r in zip(rows, results):
        label = _label(row, r, dataset)
        if row["status"] != "done":
            md.append(f"| {label} | {row['model']} | {row['status']} | | {_f(row['paper_psnr'])} | "
                      f"{_f(row['paper_ssim'], 4)} | | | | | | | |")
            continue
        beats = {True: "yes", False: "**no**", None: "-"}[row["beats_input"]]
        md.append(
            f"| {label} | {row['model']} | {_f(row['psnr'])} | {_f(row['ssim'], 4)} | "
            f"{_f(row['paper_psnr'])} | {_f(row['paper_ssim'], 4)} | {_signed(row['diff_psnr'])} | "
            f"{_signed(row['diff_ssim'], 4)} | {_f(row['y_psnr'])} | {_f(row['y_ssim'], 4)} | "
            f"{beats} | {row['steps'] if row['steps'] is not None else '-'} | "
            f"{_duration(row['train_seconds'])} |")
    for ref in meta["spec"].get("reference_rows", []):
        paper = ref["paper"].get(dataset or "", {})
        md.append(f"| {ref['label']} | (paper only) | | | {_f(paper.get('psnr'))} | "
                  f"{_f(paper.get('ssim'), 4)} | | | | | | | |")
    inputs = _input_scores(results)
    if inputs:
        a, y = inputs.get("authors", (None, None)), inputs.get("y", (None, None))
        md.append(f"| rainy input | - | {_f(a[0])} | {_f(a[1], 4)} | | | | | {_f(y[0])} | "
                  f"{_f(y[1], 4)} | | | |")
    md.append("")
    return md


def _verdict(rows):
    """Whether every trained model improves on the rainy input, said in one line."""
    done = [r for r in rows if r["status"] == "done"]
    if not done:
        return []
    worse = [r["id"] for r in done if not r["beats_input"]]
    if not worse:
        return [f"All {len(done)} trained models improve on the rainy input (PSNR under "
                f"every protocol where the input's is finite).", ""]
    return [f"**Not every model improves on the rainy input: {', '.join(worse)} "
            f"{'does' if len(worse) == 1 else 'do'} not.**", ""]


def _notes(results, meta):
    """What an infinite input PSNR means, the swapped rows, the protocols and the figures."""
    md = []
    inputs = _input_scores(results)
    if inputs and not math.isfinite(read_number(inputs.get("authors", (0,))[0]) or 0):
        md += [f"The rainy input's PSNR under the authors' protocol is infinite: some "
               f"{meta['eval_crop']}x{meta['eval_crop']} test crops hold no rain, so rainy "
               f"and clean crops are identical and tf.image.psnr gives inf for them (the "
               f"batch means, and so the protocol's mean, are then inf). Compare with the "
               f"input under the whole-image protocols.", ""]
    if any(r["row"].get("swapped_in_authors_log") for r in results):
        md += ["† The authors' own Rain100H evaluation log swaps the two 'Lp Le Lt' rows "
               "(27.7668 / 0.8472 for the loss-balanced model, 27.7977 / 0.8465 for the "
               "gradient-balanced one); the paper's table is shown.", ""]
    md += ["PSNR/SSIM: the authors' protocol (" + DESCRIPTIONS["authors"] +
           f"; crops of {meta['eval_crop']}). Y: " + DESCRIPTIONS["y"] + ". Y figures are "
           "typically about 1.5 dB above RGB ones for the same outputs. Δ = ours - paper. "
           "Steps and training time as recorded by the trainer (this machine).", ""]
    md += ["Figures: [Fig. 8, per-image PSNR](fig8_psnr_histogram.png), "
           "[Fig. 9, per-image SSIM](fig9_ssim_boxplot.png), "
           "[outputs](grid.png). Per-image scores: `<row>/evaluation/metrics.csv`.", ""]
    return md
