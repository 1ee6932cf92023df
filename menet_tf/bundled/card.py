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
        f"menet-tf derain photo.jpg -o out/ --model {e.get('rain') or name}",
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
        *([f"- **Fine-tuned from:** `{t['init']['source']}` (sha256 "
           f"`{t['init']['sha256']}`), with a fresh optimizer."] if t.get("init") else []),
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
    real, heavy = (e.get("heavy") or {}).get("paper"), e.get("heavy")
    if e.get("rain") == "heavy" and real and "authors" in heavy:
        return (f"The paper's {_config_word(e)}, trained on RainTrainH, scores {real['psnr']:.2f}"
                f" dB / {real['ssim']:.4f} on the real Rain100H under the authors' protocol "
                f"(Table I). Rain100H is not available to menet-tf, so this model was never "
                f"scored there; on menet-tf's heavy test set, whose rain is calibrated against "
                f"Rain100H's on the same 100 backgrounds, it scores {heavy['authors']['psnr']:.2f}"
                f" dB / {heavy['authors']['ssim']:.4f}.")
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


def _heavy_words(h):
    authors = (f"{h['authors']['psnr']:.2f} dB authors' / " if "authors" in h else "")
    return (f"on {h['data']} ({h['images']} images, rainy input {h['y']['input_psnr']:.2f} dB Y)"
            f" it scores {authors}{h['y']['psnr']:.2f} dB Y / {h['rgb']['psnr']:.2f} dB RGB, a "
            f"gain of {_gain(h):+.2f} dB (Y)")


def _strengths(e):
    s, h = e["scores"], e.get("heavy")
    synthetic = e["training"].get("synthetic")
    if e.get("rain") == "heavy" and h:
        lines = ["## What it is good and bad at", "",
                 f"- **Heavy rain** (what it was trained on): {_heavy_words(h)}.",
                 f"- **Light rain:** on {s['data']} it gains {_gain(s):+.2f} dB (Y) over the "
                 f"rainy input ({s['y']['psnr']:.2f} dB Y); for light rain the light model "
                 f"(`--model light`) is the better choice."]
    else:
        lines = ["## What it is good and bad at", "",
                 f"- **Light rain** (what it was trained on): on {s['data']} it gains "
                 f"{_gain(s):+.2f} dB (Y) over the rainy input."]
        if h:
            lines.append(f"- **Heavy rain:** {_heavy_words(h)}: {_heavy_verdict(s, h)}. For "
                         f"heavy rain use the heavy-rain model (`--model heavy`; "
                         f"`menet-tf models` lists it).")
    if synthetic:
        lines.append(
            f"- **It has never seen real heavy rain.** Its training rain is menet-tf's own "
            f"(`menet-tf synth`, preset {synthetic.get('preset')}, renderer "
            f"{synthetic.get('renderer_version')}), drawn on real clean photographs and "
            f"calibrated against the statistics of Rain100H's rain (docs/rain.md); on real "
            f"heavy rain expect less than on the synthetic test set.")
    lines.append(
        "- **Real rainy photos:** we have no real rainy photographs offline, so this card "
        "shows no score and no picture of one. `make demo` de-rains the synthetic rainy "
        "examples in `examples/` with the bundled models and writes rainy | de-rained "
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
    if e.get("rain") == "heavy" and e["training"].get("synthetic"):
        return _reproduce_heavy(e)
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


def _reproduce_heavy(e):
    name, data = e["name"], f"data/{e['scores']['data']}"
    return "\n".join([
        "## Reproduce",
        "",
        "Render the heavy-rain training set on RainTrainL's clean images (and a heavy test set "
        "on Rain100L's test backgrounds), fine-tune (resumable: run it again to continue), then "
        "bundle:",
        "",
        "```bash",
        "make data-heavy",
        "make train-heavy",
        f"menet-tf models add runs/{name} --name {name} --data {data} --train-data data/heavy "
        f"--heavy-data data/heavy --rain heavy",
        "```",
    ])


# ----------------------------------------------------------------------------------------------
# the README's summary of the default model

README_START = "<!-- bundled-model: written by `menet-tf models add`; do not edit by hand -->"
README_END = "<!-- /bundled-model -->"


def readme_summary(reg):
    """The README's paragraph and table on the bundled models (a registry), between its
    markers: each model on Rain100L and on the heavy test set, the rainy inputs, the paper."""
    models = sorted(reg["models"].values(), key=lambda e: (e.get("rain") != "light", e["name"]))
    default = reg["models"][reg["default"]]
    lines = [
        README_START,
        f"menet-tf ships with {len(models)} trained MENET{'s' if len(models) > 1 else ''}, so "
        f"de-raining works right after install, with no training and no download. "
        + " ".join(_model_sentence(e) for e in models)
        + f" The default is `{default['name']}`. As `menet-tf models` prints:",
        "",
        "| model | Rain100L: authors' protocol | Rain100L: Y | heavy test set: authors' | "
        "heavy test set: Y |",
        "|---|---|---|---|---|",
        *[_summary_row(e, reg["default"]) for e in models],
        _input_row(models),
    ]
    lines += [_paper_row(default), "", "What each is good and bad at, its training and licence: "
              + ", ".join(f"[{e['name']}]({e['card']})" for e in models) + ".", README_END]
    return "\n".join(lines)


def _model_sentence(e):
    t, word = e["training"], (f"`--model {e['rain']}`: " if e.get("rain") else "")
    how = (f"fine-tuned from `{t['init']['source']}` by menet-tf" if t.get("init")
           else "trained by menet-tf")
    return (f"{word}`{e['name']}`, {_config_word(e)} {how} on {t['data']} ({t['pairs']} pairs, "
            f"{t['steps']} steps).")


def _cell(scores, protocol, key="psnr", ssim="ssim"):
    if not scores or protocol not in scores:
        return "–"
    s = scores[protocol]
    return f"{s[key]:.2f} dB / {s[ssim]:.4f}"


def _summary_row(e, default):
    s, h = e["scores"], e.get("heavy")
    name = f"`{e['name']}`" + (" (default)" if e["name"] == default else "")
    return (f"| {name} | {_cell(s, 'authors')} | {_cell(s, 'y')} | {_cell(h, 'authors')} | "
            f"{_cell(h, 'y')} |")


def _input_row(models):
    """The rainy inputs' scores (the same for every model scored on the same set)."""
    s = models[0]["scores"]
    h = next((e["heavy"] for e in models if e.get("heavy") and "authors" in e["heavy"]),
             models[0].get("heavy"))
    cells = [_cell(s, "authors", "input_psnr", "input_ssim"), _cell(s, "y", "input_psnr",
             "input_ssim"), _cell(h, "authors", "input_psnr", "input_ssim"),
             _cell(h, "y", "input_psnr", "input_ssim")]
    return "| rainy input | " + " | ".join(cells) + " |"


def _paper_row(e):
    paper = e["scores"].get("paper")
    real = (e.get("heavy") or {}).get("paper")
    light = f"{paper['psnr']:.2f} dB / {paper['ssim']:.4f}" if paper else "–"
    heavy = (f"{real['psnr']:.2f} dB / {real['ssim']:.4f} on the real Rain100H, trained on "
             f"RainTrainH" if real else "–")
    return f"| the paper, {_config_word(e)} (Table I, after 100 epochs) | {light} | | {heavy} | |"


def replace_readme_summary(text, reg):
    """``text`` (a README) with the block between the markers replaced; None without markers."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return None
    return text[:start] + readme_summary(reg) + text[end + len(README_END):]

