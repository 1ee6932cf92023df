"""A bundled model's card (markdown), rendered from its registry entry.

Every figure on a card comes from the registry, which only ``menet-tf models add`` writes: the
card in ``docs/models/`` and ``menet-tf models show`` (which works from an installed wheel, with
no docs folder) print the same text, and a new model file brings a new card with no hand edit.
Basics only: no TensorFlow.
"""

PROTOCOL_ROWS = (
    ("authors", "authors' (10 crops of 224 per image, RGB; the paper's tables)"),
    ("y", "Y (whole image, MATLAB's Y channel; later papers' tables)"),
    ("rgb", "RGB (whole image, all three channels)"),
)
LICENCE = (
    "The weights are released under the MIT licence, like menet-tf's code. They were learnt "
    "from {data}; that data set's own terms apply to the data, which menet-tf does not "
    "distribute.")


def render(entry):
    """The model card of a registry entry, as markdown."""
    sections = (_head, _training, _scores, _strengths, _check, _licence, _reproduce)
    return "\n\n".join(section(entry) for section in sections) + "\n"


def network_words(entry):
    """The network in a few words: "MENET-GB (ModelShallowNewCaEdgeGramGradBalance)"."""
    return (f"{entry['alias']} ({entry['configuration']})" if entry.get("alias")
            else entry["configuration"])


def _config_word(entry):
    """How ``menet-tf train --config`` names the configuration: the paper's alias if any."""
    return entry["alias"] or entry["configuration"]


def _megabytes(entry):
    return f"{entry['bytes'] / 1e6:.1f} MB"


def _head(e):
    name = e["name"]
    return "\n".join([
        f"# {name}",
        "",
        f"{_config_word(e)} (`{e['configuration']}`) trained by menet-tf on "
        f"{e['training']['data']}, bundled with menet-tf {e['menet_tf_version']} "
        f"({e['added']}): de-raining works right after install, with no training and no "
        f"download.",
        "",
        "```bash",
        f"menet-tf derain photo.jpg -o out/ --model {name}",
        "```",
        "```python",
        "import menet_tf",
        f'model = menet_tf.pretrained("{name}")                    # a Keras model',
        f'derainer = menet_tf.Derainer.from_pretrained("{name}")   # any size, see docs/derain.md',
        "```",
        "",
        f"File: `menet_tf/bundled/{e['file']}`, the network's weights only (no optimizer), "
        f"{_megabytes(e)}, sha256 `{e['sha256']}` (checked on every load).",
    ])


def _training(e):
    t = e["training"]
    crops = t["pairs"] * t["crops_per_image"]
    return "\n".join([
        "## Training",
        "",
        f"- **Data:** {t['data']}, {t['pairs']} rainy/clean pairs (`{t['data_folder']}`). "
        f"Each image gives five {t['crop_size']}x{t['crop_size']} crops (four corners and "
        f"the centre) and their left-right flips: {crops} crops an epoch.",
        f"- **Protocol:** batch {t['batch_size']}, {t['optimizer']}, {t['precision']}, seed "
        f"{t['seed']}.",
        f"- **Length:** {t['epochs']} epochs, {t['steps']} steps ({t['steps_from']}); the "
        f"paper trains for 100 epochs.",
        f"- **Settings from:** {t['settings_from']}.",
        f"- **Source:** `{t['source']}`, sha256 `{t['source_sha256']}`.",
    ])


def _score_table(scores, protocols):
    lines = ["| protocol | PSNR (dB) | SSIM | rainy input PSNR | rainy input SSIM |",
             "|---|---|---|---|---|"]
    for key, label in protocols:
        if key in scores:
            s = scores[key]
            lines.append(f"| {label} | {s['psnr']:.2f} | {s['ssim']:.4f} | "
                         f"{s['input_psnr']:.2f} | {s['input_ssim']:.4f} |")
    return lines


def _paper_line(e):
    paper, ours = e["scores"].get("paper"), e["scores"]["authors"]
    if not paper:
        return "The paper reports no figure for this configuration on this test set."
    return (f"The paper reports {paper['psnr']:.2f} dB / {paper['ssim']:.4f} under the authors' "
            f"protocol ({paper['source']}); this model, after {e['training']['epochs']} "
            f"epochs: {ours['psnr']:.2f} dB / {ours['ssim']:.4f} "
            f"({ours['psnr'] - paper['psnr']:+.2f} dB).")


def _scores(e):
    s = e["scores"]
    return "\n".join([
        f"## Scores on {s['data']} ({s['images']} test images)",
        "",
        *_score_table(s, PROTOCOL_ROWS),
        "",
        _paper_line(e),
        "Measured by `menet-tf models add` with menet-tf's evaluation (`menet-tf evaluate`); "
        "compare only numbers of one protocol (docs/evaluation.md).",
    ])


def _gain(scores, protocol="y"):
    return scores[protocol]["psnr"] - scores[protocol]["input_psnr"]


def _heavy_verdict(light, heavy):
    """What the scores say, in words (Y protocol): the numbers decide, not the template."""
    gain, light_out, heavy_out = _gain(heavy), light["y"]["psnr"], heavy["y"]["psnr"]
    if gain <= 0:
        return "it does not help on heavy rain: its outputs are no closer to the clean images"
    if heavy_out < light_out - 6:
        return (f"it removes part of the heavy rain, but remnants of the streaks stay visible "
                f"and its outputs stay far from clean ({heavy_out:.2f} dB against "
                f"{light_out:.2f} dB on light rain)")
    return "it handles heavy rain nearly as well as light rain"


def _strengths(e):
    s, h = e["scores"], e.get("heavy")
    lines = ["## What it is good and bad at", "",
             f"- **Light rain** (what it was trained on): on {s['data']} it gains "
             f"{_gain(s):+.2f} dB (Y) over the rainy input."]
    if h:
        lines.append(
            f"- **Heavy rain:** on menet-tf's synthetic heavy set (`{h['data']}`: {h['images']} "
            f"images, rainy input {h['y']['input_psnr']:.2f} dB Y) it scores "
            f"{h['y']['psnr']:.2f} dB Y / {h['rgb']['psnr']:.2f} dB RGB, a gain of "
            f"{_gain(h):+.2f} dB: {_heavy_verdict(s, h)}. For heavy rain, train on Rain100H "
            f"(`menet-tf train --config {_config_word(e)} --data data/Rain100H`).")
    lines.append(
        "- **Real rainy photos:** we have no real rainy photographs offline, so this card "
        "shows no score and no picture of one. `make demo` de-rains the synthetic rainy "
        "examples in `examples/` with the default bundled model and writes rainy | de-rained "
        "pictures side by side; on your own photos, look at `menet-tf derain photo.jpg -o out/ --compare`.")
    return "\n".join(lines)


def _check(e):
    c = e["check"]
    rows = [f"| {image} | {psnr:.4f} |" for image, psnr in c["psnr"].items()]
    return "\n".join([
        "## Five-image check",
        "",
        f"`tests/bundled` de-rains these {c['data']} test images with the bundled file and "
        f"expects these PSNRs ({c['protocol']} protocol) within {c['tolerance_db']} dB:",
        "",
        "| image | PSNR (dB) |", "|---|---|", *rows,
    ])


def _licence(e):
    return "## Licence\n\n" + LICENCE.format(data=e["training"]["data"])


def _reproduce(e):
    t, config, data = e["training"], _config_word(e), f"data/{e['scores']['data']}"
    return "\n".join([
        "## Reproduce",
        "",
        f"Train with menet-tf (a data root with `train/` and `test/`, see data/README.md; "
        f"`--epochs {t['epochs']}` stops where this file stopped):",
        "",
        "```bash",
        f"menet-tf train --config {config} --data {data} -o runs/{config} --epochs 100",
        "```",
        "",
        "Bundle a model file or run folder (strips the optimizer, checks and re-measures "
        "every score above, rewrites the registry entry and this card):",
        "",
        "```bash",
        f"menet-tf models add runs/{config} --name {e['name']} --data {data}",
        "make update-model    # the same for the shared menet-gb-rain100l/model.keras",
        "```",
    ])


# ----------------------------------------------------------------------------------------------
# the README's summary of the default model

README_START = "<!-- bundled-model: written by `menet-tf models add`; do not edit by hand -->"
README_END = "<!-- /bundled-model -->"


def readme_summary(e):
    """The README's paragraph and table on the default bundled model, between its markers."""
    s, t = e["scores"], e["training"]
    paper = s.get("paper")

    def cell(key):
        return f"{s[key]['psnr']:.2f} dB / {s[key]['ssim']:.4f}"

    def rainy(key):
        return f"{s[key]['input_psnr']:.2f} dB / {s[key]['input_ssim']:.4f}"

    lines = [
        README_START,
        f"menet-tf ships with a trained MENET, so de-raining works right after install, with no "
        f"training and no download: `{e['name']}`, {_config_word(e)} trained by menet-tf on "
        f"{t['data']} ({t['epochs']} epochs, {t['steps']} steps; the paper trains 100). On the "
        f"{s['images']} {s['data']} test images, as `menet-tf models` prints:",
        "",
        f"| {s['data']}, {s['images']} test images | authors' protocol (the paper's tables) | "
        f"Y (later papers') | whole-image RGB |",
        "|---|---|---|---|",
        f"| `{e['name']}` | {cell('authors')} | {cell('y')} | {cell('rgb')} |",
        f"| rainy input | {rainy('authors')} | {rainy('y')} | {rainy('rgb')} |",
    ]
    if paper:
        lines.append(f"| the paper, {_config_word(e)} ({paper['source']}) | "
                     f"{paper['psnr']:.2f} dB / {paper['ssim']:.4f} | | |")
    lines += ["", f"What it is good and bad at, its training and licence: "
                  f"[its model card]({e['card']}).", README_END]
    return "\n".join(lines)


def replace_readme_summary(text, e):
    """``text`` (a README) with the block between the markers replaced; None without markers."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return None
    return text[:start] + readme_summary(e) + text[end + len(README_END):]

