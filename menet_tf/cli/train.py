"""``menet-tf train``: train a configuration into a run folder, resumably (see menet_tf.train.run).

A run folder gets ``config.json`` (exactly what ran), ``run.json`` (versions, device, CPU, seed,
command line, sessions), ``state.npz`` (the full training state, saved every epoch and every
``--save-every-steps`` steps), ``history.csv`` (per-epoch logs: loss, every task loss and weight,
PSNR/SSIM, learning rate), ``curves.png``, ``model.keras`` (the final model, with its optimizer),
``eval.json`` (authors' protocol: 10 crops per test image, tf.image PSNR/SSIM, RGB, 0..255) and
``tensorboard/``. Running the same command again on the same folder continues a stopped run.
Without ``--data`` it trains on the synthetic heavy-rain set, generating it first if needed,
so the command works offline on a fresh machine.
"""
import argparse

from menet_tf.cli import options
from menet_tf.train import DEFAULT_DATA
from menet_tf.train.distribute import STRATEGIES

DESCRIPTION = """Train a MENET configuration on a paired data set (train/ and test/ folders).

The full training state is saved at the end of every epoch (and every --save-every-steps steps)
into OUT/state.npz, atomically. Running the same command again continues where it stopped, with
the same data order, step count and learning-rate schedule; a different configuration on the
same --out is refused (naming the differing fields); --force starts over.
The run folder is runs/<--config as typed> unless -o/--out says otherwise: --config MENET-GB
trains into runs/MENET-GB, --config my.json into runs/my.
TensorBoard logs (every task loss and weight, objective, learning rate, PSNR/SSIM, per step and
per epoch) go to OUT/tensorboard; view them with `tensorboard --logdir OUT/tensorboard`."""

TRAIN_PRECISION_HELP = (
    "compute precision (default: the configuration's, fp32). bf16/fp16 train in mixed precision:"
    " the layers compute in bfloat16/float16, the variables, losses and optimizer stay float32"
    " (fp16 with a dynamic loss scale); bf16 is fast on CPUs with AVX512_BF16 or AMX")

EXAMPLES = """examples:
  menet-tf train --config MENET-GB --data ../shared/datasets/Rain100L        # -> runs/MENET-GB
  menet-tf train --config MENET-GB --data ../shared/datasets/Rain100L        # continues it
  menet-tf train --config MENET-LB --steps 2000 --save-every-steps 100 -o runs/lb
  menet-tf train --init menet-gb-rain100l --data data/heavy --lr 1e-4 -o runs/gb-heavy  # fine-tune
  menet-tf train --init menet-gb-rain100l --data data/heavy -o runs/gb-heavy --time-budget 2h"""


def register(sub):
    p = sub.add_parser(
        "train",
        help="train a MENET configuration on a data set (resumable; default: the synthetic set)",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default="MENET-GB",
                   help="released model name or alias (see `menet-tf configs`), or a JSON file"
                   " (default: MENET-GB)")
    p.add_argument("--data", default=None,
                   help="data root with train/ and test/ folders in any supported layout"
                   f" (default: {DEFAULT_DATA}, generated if missing)")
    options.add_out(p, "run folder (default: runs/<--config as typed>, a JSON file's stem;"
                    " runs/MENET-GB without --config)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="override the configuration's epochs (100)")
    length.add_argument("--steps", type=int,
                        help="train for this many optimizer steps in total instead of --epochs"
                        " (the last epoch may be partial)")
    p.add_argument("--init", metavar="SOURCE",
                   help="fine-tune: start from this model's weights (a bundled name such as"
                   " menet-gb-rain100l, a run folder, a .keras file or a TF1 checkpoint) with a"
                   " fresh optimizer; it must have --config's architecture (recorded in run.json"
                   " with its sha256; a stopped run continues from its state)")
    p.add_argument("--lr", type=float, metavar="RATE",
                   help="override the initial learning rate (1e-3); the configuration's schedule"
                   " (x0.1 every 40 epochs) applies from it")
    p.add_argument("--time-budget", type=duration, metavar="DURATION",
                   help="stop after this much wall-clock time (seconds, or 90m, 2h, 1h30m),"
                   " after the step in progress, with the state saved; the same command"
                   " continues the run (exit 0, run.json status \"stopped\")")
    p.add_argument("--batch-size", type=int, help="override the batch size (20)")
    p.add_argument("--crop-size", type=int, help="override the crop size (224)")
    p.add_argument("--depth", type=int, help="override the number of residual blocks")
    p.add_argument("--steps-per-epoch", type=int, help="stop each epoch after this many batches")
    p.add_argument("--seed", type=int, default=0, help="initialisation and data-order seed (0)")
    p.add_argument("--save-every-steps", type=int, metavar="N",
                   help="also save the training state every N steps (always saved every epoch)")
    p.add_argument("--tensorboard", dest="tensorboard", action="store_true", default=True,
                   help="write TensorBoard logs to OUT/tensorboard (default)")
    p.add_argument("--no-tensorboard", dest="tensorboard", action="store_false",
                   help="do not write TensorBoard logs")
    p.add_argument("--cache", action="store_true",
                   help="decode the training images once per session, into OUT/.menet-train-cache"
                   " (deleted at the end): about the decoded size of the training set on disk")
    p.add_argument("--accept-data-change", action="store_true",
                   help="continue a run although its training files changed since it started")
    options.add_jit_compile(p, help="XLA compilation (default: the configuration's, auto: on with"
                            " a GPU, off on a CPU)", old=("--no-jit",))
    options.add_precision(p, default=None, help=TRAIN_PRECISION_HELP)
    p.add_argument("--strategy", choices=STRATEGIES, default=None,
                   help="tf.distribute strategy (default: one device)")
    p.add_argument("--sync-bn", action="store_true", default=None,
                   help="synchronise batch-norm statistics across replicas")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="require a stopped run in --out to continue (implied when there is one)")
    again.add_argument("--force", action="store_true",
                       help="delete the run's files in --out and start over (only the run's own"
                       " files: anything else in the folder is kept)")
    options.add_quiet(p)
    p.set_defaults(func=train)


def duration(text):
    """Seconds of a --time-budget: a number of seconds, or hours/minutes/seconds (2h, 90m,
    1h30m, 45s)."""
    import re

    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d*)?)h)?\s*(?:(\d+(?:\.\d*)?)m)?\s*"
                         r"(?:(\d+(?:\.\d*)?)s?)?\s*", text or "")
    if not text or not text.strip() or match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (seconds, or e.g. 90m, 2h,"
                                         " 1h30m)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def apply_overrides(config, args):
    """The command-line overrides of a configuration (each one recorded in config.json)."""
    for attr, section, key in (("epochs", "train", "epochs"), ("batch_size", "train", "batch_size"),
                               ("crop_size", "train", "crop_size"), ("depth", "model", "depth")):
        value = getattr(args, attr, None)
        if value is not None:
            setattr(getattr(config, section), key, value)
    if getattr(args, "lr", None) is not None:
        if not args.lr > 0:
            from menet_tf.errors import ConfigError

            raise ConfigError(f"--lr must be positive, got {args.lr:g}")
        config.optimizer.learning_rate = args.lr
    jit_compile = options.jit_compile_value(getattr(args, "jit_compile", None))
    if jit_compile is not None:
        config.train.jit_compile = jit_compile
    return config


def train(args):
    from menet_tf.train.loop import TrainingInterrupted

    try:
        _train(args)
    except TrainingInterrupted as err:  # the loop said so, with the state saved: 130 / 143
        return err.exit_code
    return 0


def _train(args):
    import shlex
    import sys

    from menet_tf.train import stop_after
    from menet_tf.train.run import default_out, resolve_config, train_run

    config = apply_overrides(resolve_config(args.config), args)
    resume = "restart" if args.force else ("require" if args.resume else "auto")
    train_run(
        config, args.data, args.out or default_out(args.config), seed=args.seed, steps=args.steps,
        save_every_steps=args.save_every_steps, tensorboard=args.tensorboard, cache=args.cache,
        steps_per_epoch=args.steps_per_epoch, resume=resume,
        progress=not args.quiet and sys.stderr.isatty(),
        strategy=args.strategy, precision=args.precision, sync_bn=args.sync_bn,
        command=" ".join(["menet-tf", *map(shlex.quote, sys.argv[1:])]),
        accept_data_change=args.accept_data_change, init=args.init,
        stop=stop_after(args.time_budget) if args.time_budget is not None else None,
    )
