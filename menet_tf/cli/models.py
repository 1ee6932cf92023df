"""``menet-tf models``: the trained models bundled with menet-tf.

  menet-tf models                  one line per bundled model: configuration, training, scores
  menet-tf models show NAME        its model card (training, scores, limits, licence, how to
                                   reproduce it)
  menet-tf models add SOURCE --name NAME --data DIR [--default]
                                   bundle a .keras file or run folder: weights only, scored on
                                   DIR's test set and a synthetic heavy set, registry entry and
                                   card rewritten

Any command's --model takes a bundled name; `menet-tf derain` without --model uses the default.
"""
import argparse

from menet_tf.cli import options


def register(sub):
    p = sub.add_parser("models", help="list the bundled trained models, show a model card, add one",
                       description=__doc__.split("\n\n", 1)[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="models_command", metavar="ACTION")
    p.set_defaults(func=list_models)
    actions.add_parser("list", help="one line per bundled model (the default)").set_defaults(
        func=list_models)
    show = actions.add_parser("show", help="print a bundled model's card")
    show.add_argument("name", metavar="NAME", help="a bundled model's name (menet-tf models)")
    show.set_defaults(func=show_card)
    _register_add(actions)


def _register_add(actions):
    add = actions.add_parser(
        "add", help="bundle a trained model (.keras file or run folder), scored and carded",
        description="Write SOURCE's weights (no optimizer) into the package as NAME, score "
                    "them on DIR's test set (authors', Y and RGB protocols, five fixed images) "
                    "and on a synthetic heavy-rain set, and rewrite the registry entry and "
                    "the model card. An existing NAME is replaced.")
    add.add_argument("source", metavar="SOURCE",
                     help="a .keras file or a run folder (its model.keras); the epochs are read "
                          "from the history.csv beside it")
    add.add_argument("--name", required=True, help="the bundled name, e.g. menet-gb-rain100l")
    add.add_argument("--data", required=True, metavar="DIR",
                     help="the data root it was trained on: train/ describes the training, "
                          "test/ is scored")
    add.add_argument("--default", action="store_true",
                     help="make it the default model (the first model added always is)")
    add.add_argument("--heavy-count", type=int, default=10, metavar="N",
                     help="synthetic heavy-rain test images to score it on when --heavy-data "
                          "is not given (10; 0: none)")
    add.add_argument("--heavy-data", metavar="DIR", default=None,
                     help="a heavy-rain data root (make data-heavy) whose test/ it is scored on "
                          "under the three protocols")
    add.add_argument("--train-data", metavar="DIR", default=None,
                     help="the data root it was trained on, when not --data (train/ describes "
                          "the training)")
    add.add_argument("--rain", choices=("light", "heavy"), default=None,
                     help="the rain it is for: --model light|heavy then names it (taken from "
                          "the model that had the word)")
    add.add_argument("--work", metavar="DIR", default=None,
                     help="a new folder to keep the evaluation outputs in (default: a "
                          "temporary folder, deleted)")
    options.add_model_name(add, help="the released configuration whose network the weights load"
                           " into, when it cannot be told from the model")
    options.add_quiet(add)
    add.set_defaults(func=add_model)


def _summary_line(name, entry, default):
    from menet_tf.bundled.card import network_words

    t, s = entry["training"], entry["scores"]
    mark = " *" if name == default else "  "
    rain = f"[{entry['rain']} rain] " if entry.get("rain") else ""
    return (f"{name}{mark}  {rain}{network_words(entry)}  trained on {t['data']} "
            f"({t['pairs']} pairs), {t['epochs']} epochs  {s['data']} PSNR: authors "
            f"{s['authors']['psnr']:.2f}, y {s['y']['psnr']:.2f}, rgb {s['rgb']['psnr']:.2f} dB")


def list_models(args):
    from menet_tf.bundled import registry

    reg = registry.load_registry()
    for name, entry in reg["models"].items():
        print(_summary_line(name, entry, reg.get("default")))
    if not reg["models"]:
        print(f"no bundled models in {registry.registry_path()}")
        return 0
    print("* the default (menet-tf derain without --model); menet-tf models show NAME prints "
          "a model's card")
    words = registry.rain_names(reg)
    if words:
        print("which for which rain: " + "; ".join(
            f"--model {rain} ({name})" for rain, name in words.items())
              + ". Light drizzle and thin streaks: light; dense streaks over a misty veil: heavy")
    return 0


def show_card(args):
    from menet_tf.bundled import card, registry

    print(card.render(registry.entry(args.name)), end="")
    return 0


def add_model(args):
    from menet_tf.publish.bundle import add_model as add

    entry = add(args.source, args.name, args.data, default=args.default,
                heavy_count=args.heavy_count, model_name=args.model_name, work=args.work,
                progress=not args.quiet, rain=args.rain, train_data=args.train_data,
                heavy_data=args.heavy_data)
    s, h = entry["scores"], entry["heavy"]
    print(f"bundled {entry['name']}: {entry['bytes'] / 1e6:.2f} MB, sha256 {entry['sha256']}")
    for protocol in ("authors", "y", "rgb"):
        print(f"  {s['data']} {protocol:<8} {s[protocol]['psnr']:.4f} dB / "
              f"{s[protocol]['ssim']:.4f}   rainy input {s[protocol]['input_psnr']:.4f} / "
              f"{s[protocol]['input_ssim']:.4f}")
    if h:
        print(f"  heavy: {h['data']} ({h['images']} images) y {h['y']['psnr']:.4f} dB, rgb "
              f"{h['rgb']['psnr']:.4f} dB   rainy input y {h['y']['input_psnr']:.4f}, rgb "
              f"{h['rgb']['input_psnr']:.4f}")
    return 0
