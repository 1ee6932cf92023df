"""What a run folder records about itself, besides its state: run.json (status, sessions,
environment), history.csv, curves.png, eval.json and the TensorBoard scalars.

The file names and fields are read by ``menet-tf table`` and by people comparing runs, so they
stay as they are from one version to the next.
"""
import csv
import datetime
import io
import os

from menet_tf import files, machine
from menet_tf.errors import CheckpointError

CONFIG_FILE = "config.json"
RUN_RECORD = "run.json"
STATE_FILE = "state.npz"  # see menet_tf.train.state
HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"
FINAL_MODEL = "model.keras"
EVAL_FILE = "eval.json"
TENSORBOARD_DIR = "tensorboard"
# The --cache folder: a name no user's folder has (never OUT/.cache: --out ~ would hold ~/.cache).
CACHE_DIR = ".menet-train-cache"
# Files a run writes; --force removes exactly these (never anything else in the folder).
RUN_FILES = (CONFIG_FILE, RUN_RECORD, STATE_FILE, HISTORY_FILE, CURVES_FILE, FINAL_MODEL, EVAL_FILE)
PROTOCOL = ("authors: 10 crops per test image, tf.image PSNR/SSIM, RGB, max_val 255,"
            " averaged per batch then over batches")


def read_run_record(folder):
    """The run's record (run.json) as a dict; empty when there is none yet."""
    return files.read_json(os.path.join(folder, RUN_RECORD)) or {}


def is_run_record(record):
    """Whether a run.json is a run's record (a user's own run.json is not)."""
    return isinstance(record, dict) and "sessions" in record and "config" in record


def run_finished(folder):
    """A finished run: its final model is there and its record says so."""
    return (os.path.isfile(os.path.join(folder, FINAL_MODEL))
            and read_run_record(folder).get("status") == "finished")


def write_json(path, data):
    """A run record, atomically; a failure names the file as a CheckpointError (exit 1, no traceback)."""
    files.write_json(path, data, error=CheckpointError)


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------------------------
# run.json

def environment(strategy):
    """Versions, CPU and platform (``menet_tf.machine.environment``, the same keys as every
    other record), and the devices and strategy the run trains on."""
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU"] or \
        [d.name for d in tf.config.list_logical_devices("CPU")]
    return {
        **machine.environment(),
        "device": devices,
        "strategy": type(strategy).__name__ if strategy is not None else "default",
        "replicas": int(strategy.num_replicas_in_sync) if strategy is not None else 1,
    }


class RunRecord:
    """run.json of one session: what runs where, and every session so far.

    ``plan`` is the session's ``menet_tf.train.loop.RunPlan``; ``header`` the live header of the
    training state: its step count is read at each write, so a killed session is on record up to
    its last saved state. Only the chief writes.
    """

    def __init__(self, plan, header, strategy, chief, started):
        self.path = os.path.join(plan.out, RUN_RECORD)
        self.header, self.chief = header, chief
        self.fields = {"config": plan.config.name, "status": "running", "seed": int(plan.seed),
                       "command": plan.command,
                       "data": {"train": os.path.abspath(plan.prints["data.train"]),
                                "test": plan.prints["data.test"]},
                       "cache": CACHE_DIR if plan.cache else None,
                       "steps_per_epoch": plan.per_epoch, "target_steps": plan.target,
                       **environment(strategy)}
        if header.get("init"):  # fine-tuned from: the source and its weights' sha256
            self.fields["init"] = header["init"]
        self.session = {"start": started, "from_step": header["global_step"]}
        self.prior_sessions = list(header["sessions"])

    def sessions(self):
        """Every session of the run; this one ends now, at the current step."""
        return self.prior_sessions + [dict(self.session, end=now(), to_step=self.header["global_step"])]

    def write(self, status, summary=None):
        if summary is not None:
            self.fields["summary"] = summary
        if not self.chief:
            return
        every = self.sessions()
        self.fields.update(status=status, start=every[0]["start"], end=every[-1]["end"],
                           steps=self.header["global_step"], seconds=round(self.header["seconds"], 3),
                           sessions=every)
        write_json(self.path, self.fields)


def summary(config, out, header, test_root, seconds, stopped=False):
    """What train_run returns and run.json keeps under "summary"; ``stopped``: the ``stop``
    hook ended the session before the last step (the run continues when run again)."""
    history = header["history"]
    last = history[-1] if history else {}
    result = {"config": config.name, "out": os.path.abspath(out), "steps": header["global_step"],
              "optimizer_steps": header.get("optimizer_iterations"), "epochs": len(history),
              "seconds": seconds, "stopped": bool(stopped)}
    if test_root:
        result.update(psnr=last.get("val_psnr"), ssim=last.get("val_ssim"))
    return result


def write_eval(out, config, test_root, crop_size, header):
    """eval.json: the last epoch's test scores (authors' protocol) of the final weights."""
    last = header["history"][-1]
    write_json(os.path.join(out, EVAL_FILE), {
        "config": config.name, "data": os.path.abspath(test_root), "protocol": PROTOCOL,
        "crop_size": crop_size, "epochs": len(header["history"]), "steps": header["global_step"],
        "psnr": last["val_psnr"], "ssim": last["val_ssim"]})
    return last


# ----------------------------------------------------------------------------------------------
# history.csv and curves.png

def write_history(out, history):
    """history.csv and curves.png from the history rows (one per epoch)."""
    _write_history_csv(os.path.join(out, HISTORY_FILE), history)
    plot_history(history, os.path.join(out, CURVES_FILE))


def _write_history_csv(path, rows):
    keys = sorted({k for row in rows for k in row} - {"epoch"})

    def write(f):
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["epoch", *keys])
        for row in rows:
            writer.writerow([row["epoch"], *(row.get(k, "") for k in keys)])

    files.atomic_write(path, write, error=CheckpointError)


def plot_history(history, path):
    """Loss, PSNR and task weights per epoch, one panel each (``history``: rows or columns)."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(history, list):
        history = {k: [row.get(k, float("nan")) for row in history] for k in history[0]} if history else {}
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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    files.atomic_write(path, lambda f: f.write(buf.getvalue()), mode="wb", error=CheckpointError)


# ----------------------------------------------------------------------------------------------
# TensorBoard

class Scalars:
    """TensorBoard scalars of a run: ``OUT/tensorboard/train`` (per step and per epoch) and
    ``OUT/tensorboard/test`` (per epoch). Off (every call does nothing) when not ``enabled``."""

    def __init__(self, out, enabled):
        self.writers = {}
        if enabled:
            import tensorflow as tf

            folder = os.path.join(out, TENSORBOARD_DIR)
            self.writers = {split: tf.summary.create_file_writer(os.path.join(folder, split))
                            for split in ("train", "test")}

    def __bool__(self):
        return bool(self.writers)

    def write(self, split, prefix, values, step):
        writer = self.writers.get(split)
        if writer is None:
            return
        with writer.as_default(step=int(step)):
            for key, value in values.items():
                write_scalar(f"{prefix}/{key}", value)

    def write_epoch(self, row):
        """An epoch's row: train values under train/, ``val_*`` under test/, at step epoch + 1."""
        step = row["epoch"] + 1
        self.write("train", "epoch", {k: v for k, v in row.items()
                                      if k != "epoch" and not k.startswith("val_")}, step)
        self.write("test", "epoch", {k[4:]: v for k, v in row.items() if k.startswith("val_")}, step)

    def flush(self):
        for writer in self.writers.values():
            writer.flush()

    def close(self):
        for writer in self.writers.values():
            writer.close()


def write_scalar(tag, value):
    """``tf.summary.scalar`` without the tensorboard package: the same tensor summary, marked
    for TensorBoard's scalars plugin. Why: writing logs should not need the viewer installed
    (``pip install tensorboard`` to look at them). Uses the default writer and step."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    return tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=metadata)
