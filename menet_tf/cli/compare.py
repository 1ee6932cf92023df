"""``menet-tf compare-authors``: the port against the authors' released TF1 graphs, in numbers
(thin over menet_tf.compare.run)."""
from menet_tf.cli import options

DESCRIPTION = """Compare menet-tf with the authors' released TensorFlow 1 code, model by model.

SOURCE is a clone of the authors' repository (github SumiHui/MENET: it finds
heavy|light/model_params/<Model>/model.final-100.meta) or a folder laid out like
authors_graphs/ (heavy|light/<Model>/model.final-100.meta). Each training graph is imported with
tf.compat.v1 in its own graph and session (read as data; none of the authors' code runs
outside it). Both sides start from the released checkpoint when its .data file is there, else
from the same seeded initialisation (said in one line), and from a fresh Adam (the checkpoint's
Adam slots, beta powers and global step are reset on both sides). On one batch (five-crops of
--data, or a seeded synthetic batch) it reports: inference output difference (moving
statistics), every task loss and task weight, the gradient of every variable (with the port run
in float64 as the arbiter: which float32 implementation is closer), every variable and BN
statistic after --steps Adam steps, and the speed of both, timed in turns in this process.

Writes OUT/report.md and OUT/report.json (and OUT/curves_*.png with --train-steps). Exit status
0 when every model is within tolerance, 3 when one is not, 1 on bad input."""


def register(sub):
    p = sub.add_parser(
        "compare-authors",
        help="compare the port with the authors' released TF1 graphs (losses, gradients, steps, speed)",
        description=DESCRIPTION,
    )
    p.add_argument("source", help="clone of the authors' MENET repository, or a folder like authors_graphs/")
    options.add_out(p, "folder for report.md, report.json and plots", required=True)
    p.add_argument("--variant", action="append", metavar="MODEL",
                   help="model to compare (released name, release/name or paper alias such as"
                   " MENET-GB); repeat for several (default: every model found)")
    p.add_argument("--data", help="paired data set (any layout `menet-tf data check` knows):"
                   " batches of 20 five-crops of 224 (default: a seeded synthetic batch)")
    p.add_argument("--steps", type=int, default=3, help="Adam steps before comparing every variable (default 3)")
    p.add_argument("--train-steps", type=int, default=0, metavar="N",
                   help="also train both sides N steps on the same batches and plot their curves")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and batches (default 0)")
    p.add_argument("--timing-repeats", type=int, default=3, metavar="N",
                   help="timed rounds per measurement, after one warm-up round (default 3; 0: no timing)")
    p.add_argument("--no-arbiter", action="store_true",
                   help="skip the float64 gradient arbiter (faster; gradients then compared directly)")
    options.add_quiet(p)
    p.set_defaults(func=compare_authors)


def compare_authors(args):
    from menet_tf.compare import run as compare
    from menet_tf.compare.report import table_rows
    from menet_tf.errors import MenetError

    for name in ("steps", "train_steps", "timing_repeats"):
        if getattr(args, name) < 0:
            raise MenetError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(args, name)}")
    settings = compare.CompareOptions(
        steps=args.steps, seed=args.seed, data=args.data, timing_repeats=args.timing_repeats,
        train_steps=args.train_steps, arbiter=not args.no_arbiter,
    )
    report = compare.compare_models(args.source, args.out, args.variant, settings, progress=not args.quiet)
    for row in table_rows(report):
        print(f"{row[-1]:4}  {row[0]}")
    print(f"wrote {args.out}/report.md and report.json")
    if not report["ok"]:
        print("some models are outside tolerance (see report.md)")
        return 3
    return 0
