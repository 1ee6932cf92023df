"""The report of ``menet-tf compare-authors``: report.json, report.md (the Faithfulness table
and each model's numbers) and the training curves' figure."""
import dataclasses
import math
import os

import numpy as np

from menet_tf.compare.numerics import TOLERANCES
from menet_tf.files import replacing, write_json, write_text


def write_report(out, source, options, entries):
    """Write report.json and report.md of the models compared so far; return the report."""
    report = {
        "source": os.fspath(source),
        "options": dataclasses.asdict(options),
        "tolerances": TOLERANCES,
        "optimizer_state": "reset on both sides: fresh Adam (zero slots, step 0)",
        "models": entries,
        "ok": all(e["ok"] for e in entries),
    }
    write_json(os.path.join(out, "report.json"), report, default=_jsonable)
    write_text(os.path.join(out, "report.md"), format_markdown(report))
    return report


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _pct(x):
    return f"{100 * x:.2f}%"


def table_rows(report):
    """The Faithfulness table: one row per model."""
    rows = []
    for e in report["models"]:
        if "error" in e:
            rows.append([e["key"], "error: " + e["error"].splitlines()[0], "", "", "", "", "FAIL"])
            continue
        g = e["gradients"]
        if "port_vs_float64" in g:
            p, a = g["port_vs_float64"], g["authors_vs_float64"]
            closer = g["closer_to_float64"]
            grad = (f"port {_pct(p['median'])} / {_pct(p['worst'])}, authors {_pct(a['median'])} /"
                    f" {_pct(a['worst'])} ({closer if closer == 'equally close' else closer + ' closer'})")
        else:
            grad = f"port vs authors worst {_pct(g['port_vs_authors']['worst'])} (no float64 arbiter)"
        s = e["after_steps"]
        steps = (f"{_pct(s['weights']['value'])} of elements off, max {s['weights']['max_abs_difference']:.1e};"
                 f" BN stats {s['moving_statistics']['value']:.1e}")
        speed = ""
        if "timing" in e:
            sp = e["timing"]["speedup"]
            speed = (f"train {sp['train_step_batch_20']:.2f}x, infer {sp['infer_per_image_batch_1']:.2f}x (b1)"
                     f" / {sp['infer_per_image_batch_20']:.2f}x (b20)")
        step = e["step"]
        rows.append([
            e["key"],
            f"{e['inference']['value']:.1e}",
            f"{step['losses']['value']:.1e} / {step['weights']['value']:.1e}",
            grad,
            steps,
            speed,
            "ok" if e["ok"] else "FAIL",
        ])
    return rows


def format_markdown(report):
    header = ["model", "max inference difference (0..255)", "losses (rel.) / weights (abs.)",
              "gradients vs float64: median / worst of each variable's largest entry",
              f"variables after {report['options']['steps']} Adam steps", "speed (authors time / port time)",
              "verdict"]
    lines = [
        "# The port against the authors' released TF1 graphs",
        "",
        f"Source: `{report['source']}`. Optimizer state: {report['optimizer_state']}.",
        f"Verdict: **{'all models within tolerance' if report['ok'] else 'SOME MODELS OUTSIDE TOLERANCE'}**.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(report)]
    lines += ["", "Tolerances: " + ", ".join(f"{k} {v:g}" for k, v in report["tolerances"].items()), ""]
    for e in report["models"]:
        lines.append(f"## {e['key']}")
        if "error" in e:
            lines += ["", f"Error: {e['error']}", ""]
            continue
        lines += ["", f"Start: {e['start']}; batch: {e['batch']}; {e['optimizer']}."]
        lines += [f"- {n}" for n in e["notes"]]
        step = e["step"]
        lines += ["", "| quantity | authors | port |", "|---|---|---|"]
        for k in step["authors"]:
            lines.append(f"| {k} | {step['authors'][k]:.7g} | {step['port'][k]:.7g} |")
        if "timing" in e:
            t = e["timing"]
            lines += ["", "| seconds (median of %d) | authors | port |" % t["repeats"], "|---|---|---|"]
            for k in t["port"]:
                lines.append(f"| {k} | {t['authors'][k]:.4f} | {t['port'][k]:.4f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot_curves(entry, path):
    """Side-by-side training curves: objective, each task loss and weight, PSNR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import MaxNLocator

    rows = entry["curves"]
    first = rows[0]["authors"]
    tasks = [k for k in first if k not in ("loss", "psnr") and not k.startswith("weight_")]
    keys = ["loss", *tasks, *(f"weight_{t}" for t in tasks), "psnr"]
    steps = [r["step"] for r in rows]
    cols = 3
    n_rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(4 * cols, 3 * n_rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        ax.plot(steps, [r["authors"][key] for r in rows], label="authors' TF1 graph")
        ax.plot(steps, [r["port"][key] for r in rows], "--", label="menet-tf")
        ax.set_title("objective" if key == "loss" else key)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if key in ("loss", "texture", "mse", "edge") and all(r["authors"][key] > 0 for r in rows):
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    axes.flat[0].legend()
    fig.suptitle(entry["key"])
    fig.tight_layout()
    with replacing(path, suffix=".png", what=" the figure") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
