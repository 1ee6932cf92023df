"""The paper's figures from a table run: Fig. 8 (histogram of per-image PSNR), Fig. 9 (box plot
of per-image SSIM) and an image grid (rainy, clean, each model) like Fig. 10/11.

Per-image figures show what a mean hides: whether a model gains on every image or loses on some.
"""
import os

from menet_tf.evaluation.scoring import load_test_pairs, read_number, read_pair
from menet_tf.files import replacing

GRID_IMAGES = 3


def figures(results, meta, runs, grid_images=GRID_IMAGES):
    """Fig. 8 (per-image PSNR histogram), Fig. 9 (per-image SSIM box plot), the output grid."""
    import matplotlib

    matplotlib.use("Agg")

    done = [r for r in results if r.get("metrics")]
    if not done:
        return []
    suffix = " (quick run)" if meta["quick"] else ""
    where = meta["dataset"] or os.path.basename(meta["test"].rstrip(os.sep))
    written = [_psnr_histogram(done, runs, f"on {where}{suffix}"),
               _ssim_boxplot(done, runs, f"on {where}{suffix}")]
    grid = _grid(done, meta, runs, grid_images)
    if grid:
        written.append(grid)
    return written


def _per_image(result, key):
    return [read_number(m[key]) for m in result.get("metrics") or []
            if m.get(key) not in (None, "")]


def _series(done, key):
    """The rainy input's per-image scores (the same in every row), then each row's."""
    return [("rainy input", _per_image(done[0], f"authors_input_{key}"))] + \
        [(r["row"]["id"], _per_image(r, f"authors_{key}")) for r in done]


def _psnr_histogram(done, runs, title):
    import matplotlib.pyplot as plt
    import numpy as np

    series = _series(done, "psnr")
    values = [v for _, s in series for v in s if np.isfinite(v)]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    bins = np.linspace(min(values), max(values), 25) if values else 10
    for i, (name, s) in enumerate(series):
        ax.hist([v for v in s if np.isfinite(v)], bins=bins, histtype="step", linewidth=1.5,
                label=name, linestyle="--" if i == 0 else "-", color="black" if i == 0 else None)
    ax.set(xlabel="PSNR per test image (dB, mean of its 10 crops, authors' protocol)",
           ylabel="images", title=f"Fig. 8: per-image PSNR {title}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = _save(fig, os.path.join(runs, "fig8_psnr_histogram.png"))
    plt.close(fig)
    return path


def _ssim_boxplot(done, runs, title):
    import matplotlib.pyplot as plt

    series = _series(done, "ssim")
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(series)), 4.5))
    ax.boxplot([s for _, s in series])
    ax.set_xticks(range(1, len(series) + 1), [n for n, _ in series], rotation=30, ha="right")
    ax.set(ylabel="SSIM per test image (authors' protocol)",
           title=f"Fig. 9: per-image SSIM {title}")
    fig.tight_layout()
    path = _save(fig, os.path.join(runs, "fig9_ssim_boxplot.png"))
    plt.close(fig)
    return path


def _save(fig, path):
    """Save to a temporary file first, so a full disk never leaves a truncated PNG."""
    with replacing(path, suffix=".png", what=" the figure") as tmp:
        fig.savefig(tmp, dpi=100)
    return path


def _grid_images(done, test, count):
    """Per test image: [rainy, clean, each row's saved output or None]."""
    from menet_tf.data.images import load_rgb

    _, pairs = load_test_pairs(test)
    images = []
    for pair in pairs[:count]:
        stem = os.path.splitext(os.path.basename(pair.rainy))[0]
        line = list(read_pair(pair))
        for r in done:
            path = os.path.join(r["folder"], "evaluation", "images", stem + ".png")
            line.append(load_rgb(path) if os.path.isfile(path) else None)
        images.append(line)
    return images


def _grid(done, meta, runs, count):
    """Rainy | clean | each model's output, for the first ``count`` test images."""
    import matplotlib.pyplot as plt

    images = _grid_images(done, meta["test"], count)
    if not images:
        return None
    titles = ["rainy", "clean"] + [r["row"]["id"] for r in done]
    h, w = images[0][0].shape[:2]
    cell = 1.6
    fig, axes = plt.subplots(len(images), len(titles), squeeze=False,
                             figsize=(cell * len(titles) * w / max(h, w) + 0.4,
                                      cell * len(images) * h / max(h, w) + 0.6))
    for i, line in enumerate(images):
        for j, img in enumerate(line):
            ax = axes[i][j]
            if img is not None:
                ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=7)
    fig.suptitle("Outputs" + (" (quick run)" if meta["quick"] else ""), fontsize=9)
    fig.tight_layout()
    path = _save(fig, os.path.join(runs, "grid.png"))
    plt.close(fig)
    return path
