"""``menet-tf table``: run one of the paper's tables (menet_tf.evaluation.table_run)."""
import argparse
import os

from menet_tf.cli import options

EPILOG = """experiments (experiments/*.json, or a path to such a file):
  table1   Table I, the ablation: 8 shallow models (tasks, GB/LB weighting, channel attention)
  table2   Table II: MENET-GB/LB, shallow and deep
  table4   Table IV: MSE, MSE + VGG (needs --vgg-weights), MSE + Edge
  menet    MENET-GB alone (make train-rain100h / train-rain100l)

Re-running the same command continues: finished rows are kept, a stopped row resumes from its
last saved state, evaluated rows are not scored again. Writes into OUT: one folder per row (the
run, and evaluation/ with metrics.csv and summary.json), table.md, table.csv,
fig8_psnr_histogram.png, fig9_ssim_boxplot.png and grid.png.

--quick: the CPU-sized form (the table file's "quick" settings: 300 steps of 20 crops of 64x64,
authors' protocol on 64x64 test crops, whole-image Y/RGB as usual); the table says plainly that
these are quick-run numbers. Without --data it uses $MENET_REAL_DATA or
../shared/datasets/Rain100L, or the synthetic light set (with a message) when that is absent."""


def register(sub):
    p = sub.add_parser(
        "table", help="train, evaluate and tabulate a table of the paper (resumable)",
        description="Train every row of one of the paper's tables that is not trained yet, "
                    "evaluate each model, and write the table (ours beside the paper's) and "
                    "the paper's figures.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", metavar="EXPERIMENT",
                   help="table1, table2, table4, menet, or a table JSON file")
    options.add_out(p, "folder for the rows' runs, the table and the figures", required=True,
                    metavar="DIR", old=("--runs",))
    p.add_argument("--data", metavar="DIR",
                   help="data root with train/ and test/ (e.g. data/Rain100H: RainTrainH + Rain100H)")
    p.add_argument("--dataset", choices=("Rain100H", "Rain100L"),
                   help="which paper column to compare with (default: read off the folder name)")
    p.add_argument("--quick", action="store_true", help="the CPU-sized quick form (see below)")
    p.add_argument("--rows", nargs="+", metavar="ID", help="only these rows (ids from the table file)")
    p.add_argument("--vgg-weights", metavar="FILE",
                   help="Keras VGG19 ImageNet weights (no top) for the VGG row; without it that "
                        "row is skipped")
    p.add_argument("--eval-crop-size", type=int, help="crop of the authors' protocol (default: 224)")
    p.add_argument("--grid-images", type=int, default=3, help="test images in grid.png (default: 3)")
    options.add_quiet(p)
    train = p.add_argument_group("training overrides (as for `menet-tf train`; make: TRAIN_ARGS=...)")
    train.add_argument("--epochs", type=int, help="epochs per row (default: the configuration's 100)")
    train.add_argument("--steps", type=int, help="total optimizer steps per row (overrides --epochs)")
    train.add_argument("--batch-size", type=int, help="batch size (default 20)")
    train.add_argument("--crop-size", type=int, help="training crop size (default 224)")
    train.add_argument("--depth", type=int, help="residual blocks")
    train.add_argument("--steps-per-epoch", type=int, help="cap on batches per epoch")
    train.add_argument("--save-every-steps", type=int, default=200,
                       help="save the resumable state every N steps too (default 200)")
    train.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    train.add_argument("--cache", action="store_true",
                       help="decode each row's training images once per session, into "
                            "OUT/<row>/.menet-train-cache (deleted at the end): about the decoded size of "
                            "the training set on disk")
    options.add_jit_compile(train, help="XLA compilation of training (default: the "
                            "configuration's, auto: on with a GPU, off on a CPU)",
                            old=("--no-jit",))
    p.set_defaults(func=run)


def quick_default_data():
    """The real Rain100L copy the quick form looks for first ($MENET_REAL_DATA, or
    ../shared/datasets/Rain100L); the library falls back to the synthetic set without it."""
    return os.environ.get("MENET_REAL_DATA") or os.path.join("..", "shared", "datasets", "Rain100L")


def run(args):
    from menet_tf.evaluation import table_plan, table_run

    options.require(args, "out", "-o/--out")
    data = args.data
    if args.quick and data is None:
        data = quick_default_data()
    experiment = table_plan.subset(args.experiment, args.rows) if args.rows else args.experiment
    overrides = {"crop_size": args.crop_size, "batch_size": args.batch_size,
                 "epochs": args.epochs, "depth": args.depth,
                 "jit_compile": options.jit_compile_value(args.jit_compile)}
    table_run.run_table(experiment, args.out, data, quick=args.quick, dataset=args.dataset,
                        steps=args.steps, overrides=overrides, vgg_weights=args.vgg_weights,
                        seed=args.seed, cache=args.cache, steps_per_epoch=args.steps_per_epoch,
                        save_every_steps=args.save_every_steps, grid_images=args.grid_images,
                        eval_crop_size=args.eval_crop_size, progress=not args.quiet)
    print(f"wrote {args.out}/table.md, table.csv, fig8_psnr_histogram.png, "
          f"fig9_ssim_boxplot.png, grid.png")
    with open(os.path.join(args.out, "table.md")) as f:
        print(f.read())
    return 0
