"""``menet-tf train``: train a configuration on a paired data set and write citable results.

A run folder gets ``config.json`` (exactly what ran), ``history.csv`` (per-epoch logs: loss,
every task loss and weight, PSNR/SSIM), ``curves.png``, ``model.keras`` (the final model) and
``eval.json`` (authors' protocol: 10 crops per test image, tf.image PSNR/SSIM, RGB, 0..255).
Without ``--data`` it trains on the synthetic heavy-rain set, generating it first if needed,
so the command works offline on a fresh machine.
"""
import json
import os

DEFAULT_DATA = os.path.join("data", "synthetic", "heavy")


def register(sub):
    p = sub.add_parser(
        "train",
        help="train a MENET configuration on a data set (default: the synthetic heavy set)",
        description=__doc__.split("\n\n")[0].replace("``", ""),
    )
    p.add_argument("--config", default="MENET-GB",
                   help="released model name or alias (see `menet-tf configs`), or a JSON file"
                   " (default: MENET-GB)")
    p.add_argument("--data", default=None,
                   help="data root with train/ and test/ folders in any supported layout"
                   f" (default: {DEFAULT_DATA}, generated if missing)")
    p.add_argument("--out", default=None, help="run folder (default: runs/<config name>)")
    p.add_argument("--epochs", type=int, help="override the configuration's epochs (100)")
    p.add_argument("--batch-size", type=int, help="override the batch size (20)")
    p.add_argument("--crop-size", type=int, help="override the crop size (224)")
    p.add_argument("--depth", type=int, help="override the number of residual blocks")
    p.add_argument("--steps-per-epoch", type=int, help="stop each epoch after this many batches")
    p.add_argument("--seed", type=int, default=0, help="shuffling and initialisation seed")
    p.add_argument("--cache", action="store_true", help="keep decoded images in memory")
    p.add_argument("--no-jit", action="store_true", help="run without XLA compilation")
    p.add_argument("--force", action="store_true", help="reuse a run folder that has results")
    p.set_defaults(func=train)


def _load_config(args):
    from menet_tf import config as config_lib

    if args.config.endswith(".json") or os.path.isfile(args.config):
        config = config_lib.load_config(args.config)
    else:
        config = config_lib.released_config(args.config)
    if args.epochs is not None:
        config.train.epochs = args.epochs
    if args.batch_size is not None:
        config.train.batch_size = args.batch_size
    if args.crop_size is not None:
        config.train.crop_size = args.crop_size
    if args.depth is not None:
        config.model.depth = args.depth
    if args.no_jit:
        config.train.jit_compile = False
    return config


def _splits(root):
    """(train pairs source, test pairs source or None) of a data root."""
    from menet_tf.data import discover_splits
    from menet_tf.errors import DataError

    splits = discover_splits(root)
    train = next((d for k, d in splits.items() if os.path.basename(k).lower() in ("train", "training")), None)
    test = next((d for k, d in splits.items() if os.path.basename(k).lower() in ("test", "testing", "val")), None)
    if train is None:
        if len(splits) != 1:
            raise DataError(f"{root}: found {sorted(splits)}, but no train/ folder among them")
        train = next(iter(splits.values()))
    return train.root, (test.root if test is not None else None)


def plot_history(history, path):
    """Loss, PSNR and task weights per epoch, one panel each."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = range(1, len(history["loss"]) + 1)
    weights = sorted(k for k in history if k.startswith("weight_"))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    axes[0].plot(epochs, history["loss"], label="train")
    if "val_loss" in history:
        axes[0].plot(epochs, history["val_loss"], label="test")
    axes[0].set(title="objective", xlabel="epoch", yscale="log")
    axes[1].plot(epochs, history["psnr"], label="train")
    if "val_psnr" in history:
        axes[1].plot(epochs, history["val_psnr"], label="test")
    axes[1].set(title="PSNR (dB, RGB)", xlabel="epoch")
    for key in weights:
        axes[2].plot(epochs, history[key], label=key[len("weight_"):])
    axes[2].set(title="task weights (epoch mean)", xlabel="epoch")
    for ax in axes:
        ax.legend()
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(args):
    import keras

    from menet_tf.config import save_config
    from menet_tf.data import eval_dataset, synthesize, train_dataset
    from menet_tf.errors import MenetError
    from menet_tf.training import build_model

    config = _load_config(args)
    data = args.data or DEFAULT_DATA
    if args.data is None and not os.path.isdir(data):
        print(f"{data} not found: generating the synthetic heavy-rain set there (seed 0)")
        synthesize(data, preset="heavy", seed=0)
    train_root, test_root = _splits(data)
    out = args.out or os.path.join("runs", config.name)
    if os.path.exists(os.path.join(out, "history.csv")) and not args.force:
        raise MenetError(f"{out} already holds a run; choose another --out or pass --force")
    os.makedirs(out, exist_ok=True)

    keras.utils.set_random_seed(args.seed)
    crop, batch = config.train.crop_size, config.train.batch_size
    train_ds = train_dataset(train_root, batch_size=batch, crop_size=crop, seed=args.seed, cache=args.cache)
    test_ds = eval_dataset(test_root, batch_size=batch, crop_size=crop, cache=True) if test_root else None
    steps = int(train_ds.cardinality())
    if steps <= 0:
        raise MenetError(f"{train_root}: fewer crops than one batch of {batch}")
    if args.steps_per_epoch:
        steps = min(steps, args.steps_per_epoch)
        train_ds = train_ds.take(steps)
    # The released scripts decay the learning rate every 40 epochs of *their* training set.
    model = build_model(config, steps_per_epoch=steps)
    save_config(config, os.path.join(out, "config.json"))
    print(f"training {config.name} on {train_root} ({steps} batches of {batch} crops {crop}x{crop}"
          f" per epoch, {config.train.epochs} epochs); results in {out}")
    history = model.fit(
        train_ds,
        epochs=config.train.epochs,
        validation_data=test_ds,
        callbacks=[keras.callbacks.CSVLogger(os.path.join(out, "history.csv"))],
        shuffle=False,  # the pipeline reshuffles every epoch itself (seeded)
        verbose=1 if os.isatty(1) else 2,
    )
    model.save(os.path.join(out, "model.keras"))
    plot_history(history.history, os.path.join(out, "curves.png"))
    if test_ds is not None:
        # fit's validation after the last epoch already scored the final weights on the test set.
        results = {k: history.history[f"val_{k}"][-1] for k in ("psnr", "ssim")}
        summary = {
            "config": config.name,
            "data": os.path.abspath(test_root),
            "protocol": "authors: 10 crops per test image, tf.image PSNR/SSIM, RGB, max_val 255,"
            " averaged per batch then over batches",
            "crop_size": crop,
            "epochs": config.train.epochs,
            "psnr": results["psnr"],
            "ssim": results["ssim"],
        }
        with open(os.path.join(out, "eval.json"), "w") as f:
            json.dump(summary, f, indent=2)
        print(f"test: PSNR {results['psnr']:.4f} dB, SSIM {results['ssim']:.4f} ({test_root})")
    print(f"wrote {out}/config.json, history.csv, curves.png, model.keras"
          + (", eval.json" if test_ds is not None else ""))
    return 0
