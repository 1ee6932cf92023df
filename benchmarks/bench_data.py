"""Input-pipeline throughput in crops/s at batch 20 (what `make bench-data` runs).

    python benchmarks/bench_data.py                      # synthetic heavy set
    python benchmarks/bench_data.py ../shared/datasets/Rain100L/train --epochs 2

Takes the same options as `menet-tf data bench` (see --help). Compare the figure with the
training step rate: at batch 20, the pipeline must deliver 20 x steps/s crops per second.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from menet_tf.cli import data as cli  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_data.py")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "bench", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
