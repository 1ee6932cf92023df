"""``make gpu-check``: does menet-tf work on this GPU, and how fast is it? One JSON answers it.

    python benchmarks/gpu_check.py [-o gpu-check.json] [--force] [--budget 280]
    python benchmarks/gpu_check.py --allow-cpu --tiny -o dry.json   # the CPU dry run of the tests

Needs nothing but the repository and ``pip install -e .[gpu]``. Without a GPU it prints one
line and exits 0. With one, in under 5 minutes (``--budget`` seconds, default 280), it runs:

- ``gpu_tests``: ``pytest -m gpu tests`` in a subprocess (first, before this process takes the
  GPU's memory): passed / failed / skipped counts and the failures' names;
- ``train_step``: the MENET-GB training step at batch 20 of 224x224 with XLA, in float32 and in
  mixed float16 (dynamic loss scaling), and float32 without XLA, built alike and timed
  interleaved; first-call seconds (trace and compile), losses, skipped steps, loss scale;
- ``inference``: the bundled model through ``Derainer`` at batch 1 and 20 of 224x224 in fp32,
  fp16 and bf16, interleaved; the half-precision outputs against fp32 (PSNR), and what fp32
  de-raining gains on synthetic rain;
- ``training_run``: 200 steps of MENET-GB at 224x224 on a fresh synthetic set through
  ``train_run`` (pipeline, loop, checkpoints, test set): seconds per step, first and final loss;
- ``tiling``: the size above which ``derain`` tiles on this device (``default_max_pixels``) and
  an 8-megapixel image de-rained whole and in tiles: seconds, GPU peak memory, tiles vs whole.

Each section runs in its own try/except: a failure is recorded (one line, plus the traceback's
end) and the rest still runs. A section that the time budget leaves no room for is recorded as
skipped, and the training run is shortened to fit (the budget decides what starts; a section
that has started is finished). The JSON (written atomically) starts with ``works`` and a
one-line ``verdict``; the exit status is 0 when menet-tf works here, 1 when a section failed,
130 when interrupted (the sections done are still written).
"""
import argparse
import datetime
import math
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's warnings stay, its INFO goes

# The library's parts of the check (none imports TensorFlow before find_gpus does).
from menet_tf.bench.gpu import device_record, find_gpus, gpu_tests, no_gpu_line  # noqa: E402
from menet_tf.bench.gpu_sections import inference, tiling, train_step  # noqa: E402
from menet_tf.bench.sections import (Budget, SkipSection, run_section,  # noqa: E402,F401
                                     timed)
from menet_tf.bench.speed import GB_MODEL  # noqa: E402
from menet_tf.bundled.registry import default_name  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMAT = 1
DEFAULT_BUDGET = 280.0  # seconds: under 5 minutes with TensorFlow's import and the JSON
TILING_RESERVE = 50.0  # seconds the training run leaves for tiling (8 MP XLA compile included)


# What each section of the JSON holds, so that the file explains itself.
ABOUT = {
    "works": "true when no section failed (skipped for time is not a failure)",
    "gpu_tests": "pytest -m gpu on the repository's tests, in a subprocess: the GPU-only tests",
    "train_step": "MENET-GB training step (three tasks, gradient balance), seconds per step,"
                  " timed interleaved after compilation; float32 and mixed_float16 with XLA"
                  " (jit_compile), float32_no_xla without; first_applied_step: mixed float16's"
                  " dynamic loss scale skips a fresh model's first steps until it fits",
    "inference": "the bundled model through menet_tf Derainer (batch norm folded), ms per image;"
                 " fp16/bf16 outputs against fp32 (PSNR, dB); fp32_gain_db: PSNR gained over the"
                 " rainy input on synthetic rain",
    "training_run": "menet_tf train_run on a fresh synthetic set (pipeline, loop, checkpoints,"
                    " test set): s_per_step after the first epoch (compile excluded), loss per"
                    " epoch",
    "tiling": "default_max_pixels: the size above which derain tiles on this device; an image just"
              " under 8 MP de-rained by default (whole) and in tiles: seconds, GPU peak memory",
}


class Sizes:
    """What to run: the full sizes, or tiny ones (``--tiny``) that only exercise the code."""

    def __init__(self, tiny):
        self.tiny = tiny
        if tiny:
            self.depth = 2  # MENET-GB with 2 residual blocks: the same step, cheaply
            self.train_batch, self.train_size, self.repeats = 2, 32, 1
            self.infer_size, self.infer_batches = 32, (1, 2)
            self.run_steps, self.run_crop, self.run_batch = 4, 32, 2
            self.run_pairs, self.run_test, self.run_image, self.run_per_epoch = 2, 1, "96x64", 2
            self.big, self.tile, self.overlap = (96, 128), 64, 32
        else:
            self.depth = None  # the released configuration's (8)
            self.train_batch, self.train_size, self.repeats = 20, 224, 5
            self.infer_size, self.infer_batches = 224, (1, 20)
            self.run_steps, self.run_crop, self.run_batch = 200, 224, 20
            self.run_pairs, self.run_test, self.run_image, self.run_per_epoch = 40, 4, "mixed", None
            self.big, self.tile, self.overlap = (2448, 3264), None, None  # 7.99 MP, tiles: defaults

    def as_dict(self):
        return {"tiny": self.tiny, "depth": self.depth or 8,
                "train_step": {"batch": self.train_batch, "size": self.train_size,
                               "repeats": self.repeats},
                "inference": {"size": self.infer_size, "batches": list(self.infer_batches),
                              "repeats": self.repeats},
                "training_run": {"steps": self.run_steps, "crop": self.run_crop,
                                 "batch": self.run_batch, "pairs": self.run_pairs,
                                 "test_pairs": self.run_test},
                "tiling": {"image": list(self.big),
                           "megapixels": round(math.prod(self.big) / 1e6, 2)}}


# ----------------------------------------------------------------------------------------------
# the training run (the one section that needs menet_tf.train)

def training_run(sizes, jit, budget, reserve, step_s, failures):
    """``train_run`` of MENET-GB on a fresh synthetic set for up to ``sizes.run_steps`` steps
    (fewer when the budget, less ``reserve`` seconds, has no room: ``step_s`` is the measured
    step), with its first and final loss and its speed. ``train_run``'s ``stop`` hook ends it
    when the budget runs out, after a step, with its state saved."""
    import menet_tf
    from menet_tf.data.synth import synthesize
    from menet_tf.train import stop_after
    from menet_tf.train.loop import TrainingInterrupted
    from menet_tf.train.run import train_run
    from menet_tf.train.state import read_state_header

    with tempfile.TemporaryDirectory(prefix="menet-tf-gpu-check-") as work:
        data, run = os.path.join(work, "synthetic"), os.path.join(work, "run")
        _, synth_s = timed(lambda: synthesize(
            data, preset="heavy", seed=0, count=sizes.run_pairs, test_count=sizes.run_test,
            size=sizes.run_image, progress=False))
        steps = _steps_with_room(sizes, budget, reserve, step_s)
        config = menet_tf.released_config(GB_MODEL)
        if sizes.depth:
            config.model.depth = sizes.depth
        config.train.crop_size, config.train.batch_size = sizes.run_crop, sizes.run_batch
        config.train.jit_compile = jit
        lines = []
        log = lambda message: lines.append((time.perf_counter(), str(message)))  # noqa: E731
        out = {"model": GB_MODEL, "steps_asked": sizes.run_steps, "steps_planned": steps,
               "crop": sizes.run_crop, "batch": sizes.run_batch, "jit_compile": jit,
               "data": f"synthetic heavy rain, {sizes.run_pairs} train and {sizes.run_test}"
                       " test pairs",
               "synthesize_s": synth_s}
        t0 = time.perf_counter()
        try:
            summary = train_run(config, data, run, steps=steps, tensorboard=False,
                                progress=False, steps_per_epoch=sizes.run_per_epoch,
                                command="benchmarks/gpu_check.py", log=log,
                                stop=stop_after(max(budget.left() - reserve, 1.0)))
        except TrainingInterrupted:
            raise KeyboardInterrupt from None  # the user's Ctrl-C: stop the check
        out["seconds_in_run"] = round(summary["seconds"], 3)
        if summary.get("stopped"):
            out["stopped"] = "by the time budget (the steps done are recorded)"
        out["wall_s"] = round(time.perf_counter() - t0, 3)
        state_file = os.path.join(run, "state.npz")
        header = read_state_header(state_file) if os.path.exists(state_file) else None
    history = header["history"] if header else []
    out.update(run_figures(history, lines, t0))
    out["steps_done"] = header["global_step"] if header else 0  # a stopped run: mid-epoch too
    if out.get("steps_done", 0) <= 0:
        failures.append("no training step was recorded")
    elif not all(math.isfinite(r.get("loss", math.nan)) for r in history):
        failures.append(f"non-finite loss: {[r.get('loss') for r in history]}")
    return out


def _steps_with_room(sizes, budget, reserve, step_s):
    """The steps of the training run: all asked for, or as many as the budget leaves room for
    (at the measured step's speed, plus a first call's compile); too few is a skipped section."""
    steps = sizes.run_steps
    if sizes.tiny:
        return steps
    room = budget.left() - reserve - 15.0 - (step_s or {}).get("first_call_s", 60.0)
    per_step = 1.25 * (step_s or {}).get("median_s", 1.0)
    steps = max(0, min(steps, int(room / per_step)))
    if steps < 20:
        raise SkipSection(f"time budget: {budget.left():.0f} s left, room for {steps} steps")
    return steps


def run_figures(history, lines, t0):
    """Steps, losses and speeds of a run from its history rows and timestamped log lines.

    ``s_per_step``: between the end of the first epoch and the end of the last (XLA compile and
    warm-up excluded; per-epoch test and checkpoint included); ``s_per_step_overall``: all of it."""
    if not history:
        return {"steps_done": 0}
    first, last = history[0], history[-1]
    ends = [t for t, line in lines if line.startswith("epoch ")]
    out = {"steps_done": int(last["steps"]), "epochs": len(history),
           "loss_first_epoch": first.get("loss"), "loss_final_epoch": last.get("loss"),
           "psnr_final_epoch": last.get("psnr"), "val_psnr_final": last.get("val_psnr"),
           "loss_decreased": bool(last.get("loss", math.inf) < first.get("loss", -math.inf)),
           "log": [line for _, line in lines if line.startswith(("epoch ", "test: "))][-3:]}
    if ends:
        out["s_per_step_overall"] = round((ends[-1] - t0) / max(int(last["steps"]), 1), 4)
    if len(ends) >= 2 and int(last["steps"]) > int(first["steps"]):
        steps = int(last["steps"]) - int(first["steps"])
        out["s_per_step"] = round((ends[-1] - ends[0]) / steps, 4)
    return out


# ----------------------------------------------------------------------------------------------
# the verdict

def verdict(result):
    """(works, one line): does menet-tf work on this device, and its headline figures."""
    sections = result["sections"]
    failed = [n for n, s in sections.items() if s.get("ok") is False]
    skipped = [n for n, s in sections.items() if s.get("ok") is None]
    works = not failed and not result.get("interrupted")
    head = (f"menet-tf {result['device']['versions']['menet-tf']} "
            f"{'works' if works else 'does NOT fully work'} on {result['device']['name']}")
    parts = [f"{len(sections) - len(failed) - len(skipped)}/{len(sections)} sections ok"
             + (f" (failed: {', '.join(failed)})" if failed else "")
             + (f" (skipped for time: {', '.join(skipped)})" if skipped else "")]
    tests = sections.get("gpu_tests", {})
    if "passed" in tests:
        failed_tests = tests["failed"] + tests["errors"]
        parts.append(f"GPU tests {tests['passed']} passed, {failed_tests} failed,"
                     f" {tests['skipped']} skipped")
    steps = sections.get("train_step", {}).get("contenders", {})
    step_text = [f"{name} {c['step']['median_s']:.3g} s" for name, c in steps.items()
                 if "step" in c]
    if step_text:
        t = sections["train_step"]
        parts.append(f"{GB_MODEL} step (batch {t['batch']} of {t['size']}x{t['size']}): "
                     + ", ".join(step_text))
    precisions = sections.get("inference", {}).get("precisions", {})
    big = max(result["settings"]["inference"]["batches"])
    infer_text = [f"{p} {v[f'batch_{big}']['ms_per_image']:.3g}" for p, v in precisions.items()
                  if f"batch_{big}" in v]
    if infer_text:
        parts.append(f"inference ms/image at batch {big}: " + ", ".join(infer_text))
    run = sections.get("training_run", {})
    if "steps_done" in run:
        speed = run.get("s_per_step", run.get("s_per_step_overall"))
        parts.append(f"{run['steps_done']} training steps"
                     + (f" at {speed:.3g} s/step" if speed else "")
                     + (f", loss {run['loss_first_epoch']:.4g} -> {run['loss_final_epoch']:.4g}"
                        if run.get("loss_final_epoch") is not None else "")
                     + (" (stopped by the time budget)" if run.get("stopped") else ""))
    tiles = sections.get("tiling", {})
    if tiles.get("default"):
        d = tiles["default"]
        total = (result["device"].get("gpus") or [{}])[0].get("memory_total_mb")
        parts.append(f"{tiles['pixels'] / 1e6:.2g} MP image {d['seconds']:.3g} s"
                     + (f", GPU peak {d['gpu_peak_mb']:.0f} MB" if d.get("gpu_peak_mb") else "")
                     + (f" of {total:.0f} MB" if d.get("gpu_peak_mb") and total else ""))
    line = head + ": " + "; ".join(parts)
    if result["device"]["device"] != "GPU":
        line += " [CPU dry run: no GPU figure]"
    return works, line


# ----------------------------------------------------------------------------------------------
# the command

def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="gpu_check.py", description=__doc__.split("\n\n")[0],
        epilog="Without a GPU: one line, exit 0. Exit 1 when a section failed.")
    parser.add_argument("-o", "--out", default="gpu-check.json", metavar="FILE.json",
                        help="where the JSON goes (default gpu-check.json)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET, metavar="SECONDS",
                        help=f"time budget of the whole check (default {DEFAULT_BUDGET:.0f})")
    parser.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto",
                        help="XLA for the training step, training run and inference (default auto:"
                        " on with a GPU)")
    parser.add_argument("--tests", default=os.path.join(REPO, "tests"), metavar="PATH",
                        help="where `pytest -m gpu` looks (default the repository's tests/)")
    parser.add_argument("--allow-cpu", action="store_true",
                        help="run on a CPU too (a dry run of the check, not a GPU figure)")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny sizes and few steps: exercises every section in seconds")
    args = parser.parse_args(argv)
    if args.budget <= 0:
        parser.error(f"--budget must be positive, got {args.budget}")
    return args


def main(argv=None):
    args = parse_args(argv)
    budget = Budget(args.budget)
    tf, gpus, printed = find_gpus()
    if not gpus and not args.allow_cpu:
        print(no_gpu_line(tf))
        return 0
    sys.stderr.write(printed)
    out = os.path.abspath(args.out)
    if os.path.exists(out) and not args.force:
        print(f"gpu-check: {args.out}: already exists; pass --force to replace it", file=sys.stderr)
        return 1
    try:
        os.makedirs(os.path.dirname(out), exist_ok=True)
    except OSError as err:
        print(f"gpu-check: {args.out}: cannot create its folder ({err.strerror})", file=sys.stderr)
        return 1
    from menet_tf.errors import MenetError
    from menet_tf.files import write_json
    from menet_tf.model.multitask import resolve_jit_compile

    sizes = Sizes(args.tiny)
    jit = resolve_jit_compile(args.jit_compile)
    result = {
        "check": "menet-tf gpu-check", "format": FORMAT, "works": None, "verdict": None,
        "command": " ".join(["python", "benchmarks/gpu_check.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "budget_s": args.budget, "device": device_record(tf, gpus),
        "settings": {**sizes.as_dict(), "jit_compile": jit,
                     "jit_compile_setting": args.jit_compile},
        "about": ABOUT, "sections": {}, "notes": [],
    }
    if not gpus:
        result["notes"].append("no GPU: a CPU dry run (--allow-cpu); figures are not GPU figures")
    print(f"gpu-check: {result['device']['name']}, TensorFlow {tf.__version__},"
          f" budget {args.budget:.0f} s", flush=True)
    sections = result["sections"]
    try:
        # First: pytest's process must find the GPU's memory free (TensorFlow takes most of it
        # in this process as soon as it runs anything there).
        tests_timeout = min(90.0, max(budget.left() - 170, 30))
        run_section("gpu_tests", lambda failures: gpu_tests(args.tests, tests_timeout, bool(gpus), REPO),
                    result, budget, needs=60)
        run_section("train_step", lambda failures: train_step(sizes, jit, budget, failures),
                    result, budget, needs=60)
        bundled = default_name()  # the model `menet-tf derain` runs without --model
        run_section("inference", lambda failures: inference(sizes, jit, failures, bundled),
                    result, budget, needs=40)
        f32 = sections["train_step"].get("contenders", {}).get("float32", {})
        step_s = {"median_s": f32["step"]["median_s"], "first_call_s": f32["first_call_s"]} \
            if "step" in f32 else None
        run_section("training_run", lambda failures: training_run(
            sizes, jit, budget, TILING_RESERVE, step_s, failures), result, budget, needs=45)
        run_section("tiling", lambda failures: tiling(sizes, jit, failures), result, budget,
                    needs=30)
    except KeyboardInterrupt:
        result["interrupted"] = True
        result["notes"].append("interrupted: the sections done so far are recorded")
    result["seconds"] = round(budget.elapsed(), 1)
    result["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    result["works"], result["verdict"] = verdict(result)
    try:
        write_json(out, result)
    except MenetError as err:
        print(result["verdict"])
        print(f"gpu-check: {err}", file=sys.stderr)
        return 1
    print(result["verdict"])
    print(f"gpu-check: wrote {args.out} ({result['seconds']:.0f} s)")
    if result.get("interrupted"):
        return 130
    return 0 if result["works"] else 1


if __name__ == "__main__":
    sys.exit(main())
