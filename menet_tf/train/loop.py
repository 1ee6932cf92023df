"""The epoch/step loop of one training session: build or restore, train, record, finish.

Why a loop of our own over the compiled ``train_step`` instead of ``fit``: a mid-epoch resume
must skip the batches already seen in the same order, and per-step TensorBoard values are the
step's own (the trackers are reset before every step; the epoch means are kept on the host, in
the state's header, so they survive a restart with the rest of the state).
"""
import contextlib
import dataclasses
import math
import os
import shutil
import signal
import time
from typing import Any, Callable, Optional

from menet_tf import files, interrupts
from menet_tf.errors import CheckpointError, MenetError
from menet_tf.train import records, state
from menet_tf.train.distribute import is_chief, make_strategy, worker_out_dir
from menet_tf.train.records import CACHE_DIR

CACHE_MARK = "made-by-menet-tf-train"  # inside CACHE_DIR: the run made it, the run may delete it


class TrainingInterrupted(MenetError):
    """SIGINT or SIGTERM stopped the session after a step, with the state saved;
    ``exit_code`` is the shell's for that signal (130, 143)."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


class _StopRequested(Exception):
    """The ``stop`` hook said so; the state is saved. Caught by ``run_epochs``: the session
    returns normally, marked stopped."""


@dataclasses.dataclass
class RunPlan:
    """What ``train_run`` settled before any TensorFlow work: the run's configuration, folder,
    data, length and options (see ``train_run`` for each)."""
    config: Any
    out: str
    train_pairs: list
    test_root: Optional[str]
    prints: dict  # the run's fingerprint (menet_tf.train.state.fingerprint)
    per_epoch: int
    target: int
    seed: int = 0
    save_every_steps: Optional[int] = None
    tensorboard: bool = True
    cache: bool = False
    progress: bool = True
    strategy: Any = None
    command: Optional[str] = None
    log: Callable = print
    data_files: Optional[list] = None  # the training folder's [name, size] (state.data_files)
    init: Optional[dict] = None  # fine-tuned from: menet_tf.train.finetune.init_record
    init_weights: Optional[dict] = None  # its network's weights, applied to a fresh start only
    stop: Optional[Callable] = None  # stop(global_step) -> bool, asked after every step

    @property
    def state_path(self):
        return os.path.join(self.out, records.STATE_FILE)


def train(plan, header):
    """Run one session of ``plan``, continuing from the saved ``header`` (None: from scratch);
    returns the run summary."""
    session = Session(plan)
    session.build_or_restore(header)
    session.open_records()
    session.prepare_data()
    session.run_epochs()
    if session.stopped:
        return session.stopped_summary()
    return session.finish()


class Session:
    """One process's share of a run, from its start to its finish or interruption."""

    def __init__(self, plan):
        self.plan, self.log = plan, plan.log
        self.started, self.t_session = records.now(), time.perf_counter()
        self.strategy = _make_strategy(plan.strategy)
        self.chief = is_chief(self.strategy)
        # False while a step or an epoch is being booked: no state may be saved then.
        self.consistent = True
        self.stopped = False  # the stop hook ended the session, state saved

    # -- start --------------------------------------------------------------------------------

    def build_or_restore(self, header):
        """The model, and the header of the state it continues from (restored into it)."""
        import keras

        from menet_tf.model.multitask import build_model

        plan = self.plan
        keras.utils.set_random_seed(int(plan.seed))
        scope = self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()
        with scope:
            # The LR decay counts epochs of this training set (every decay_epochs * per_epoch steps).
            self.model = build_model(plan.config, steps_per_epoch=plan.per_epoch)
        if header is not None:
            header = state.resume_state(plan.state_path, self.model)
            self.log(f"resuming {plan.out} at step {header['global_step']} (epoch"
                     f" {header['epoch'] + 1}, batch {header['batches_done']} of {plan.per_epoch})")
        else:
            header = state.new_header(plan.prints, plan.seed)
            if plan.init is not None:  # a fresh start from the source's weights; fresh optimizer
                from menet_tf.train.finetune import apply_init

                apply_init(self.model, plan.init_weights, plan.init["source"])
                header["init"] = plan.init
                self.log(f"starting from the weights of {plan.init['source']}"
                         f" (sha256 {plan.init['sha256'][:12]}...)")
        header["target_steps"] = plan.target
        if plan.data_files is not None:  # checked by train_run, or accepted: this is the data now
            header["data_files"] = plan.data_files
        self.header = header
        self.seconds_before = header["seconds"]

    def open_records(self):
        """config.json, run.json ("running") and the TensorBoard writers."""
        from menet_tf.config import save_config

        plan = self.plan
        if self.chief:
            save_config(plan.config, os.path.join(plan.out, records.CONFIG_FILE))
        self.record = records.RunRecord(plan, self.header, self.strategy, self.chief, self.started)
        self.record.write("running")
        self.scalars = records.Scalars(plan.out, plan.tensorboard and self.chief)

    def prepare_data(self):
        """The test set, the training cache and the compiled step functions."""
        from menet_tf.data import eval_dataset

        train = self.plan.config.train
        test_root = self.plan.test_root
        self.test_ds = (eval_dataset(test_root, batch_size=train.batch_size, crop_size=train.crop_size,
                                     cache=True) if test_root else None)
        self.train_cache = _train_cache(self.plan.out, self.plan.cache, self.strategy, self.chief)
        self.model.make_train_function()
        self.model.make_test_function()
        self.train_fn, self.test_fn = self.model.train_function, self.model.test_function
        self.schedule = _schedule_of(self.model.optimizer)

    # -- the loop -----------------------------------------------------------------------------

    def run_epochs(self):
        """Epochs until the target step. SIGINT/SIGTERM stop it after the current step with the
        state saved; a KeyboardInterrupt (a second Ctrl-C) saves it unless it landed mid-booking."""
        plan, header = self.plan, self.header
        try:
            with interrupts.deferred():
                if header["global_step"] < plan.target:
                    crop, batch = plan.config.train.crop_size, plan.config.train.batch_size
                    self.log(f"training {plan.config.name} on {plan.prints['data.train']}"
                             f" ({plan.per_epoch} batches of {batch} crops {crop}x{crop} per epoch,"
                             f" {plan.target} steps = {plan.target / plan.per_epoch:g} epochs);"
                             f" results in {plan.out}")
                    self._stop_if_asked()  # before the first step too: a budget already spent
                while header["global_step"] < plan.target:
                    self.run_epoch()
                    self._stop_if_signalled()
                    self._stop_if_asked()
        except _StopRequested:
            self.stopped = True
        except KeyboardInterrupt:
            if self.consistent:
                self.checkpoint()
                self.record.write("interrupted")
                self.log(f"interrupted: state saved at step {header['global_step']}; run the same"
                         " command again to continue")
            raise
        finally:
            self.scalars.close()

    def run_epoch(self):
        """The rest of the current epoch (all of it, unless resumed mid-epoch), then its row."""
        plan, header = self.plan, self.header
        epoch, done = header["epoch"], header["batches_done"]
        n_batches = min(plan.per_epoch, plan.target - epoch * plan.per_epoch)
        n_epochs = math.ceil(plan.target / plan.per_epoch)
        iterator = iter(self._distribute(self._epoch_batches(epoch, n_batches, done)))
        bar = _progress_bar(n_batches, done, f"epoch {epoch + 1}/{n_epochs}", plan.progress)
        for _ in range(done, n_batches):
            logs = self.step(iterator)
            bar.update(1)
            bar.set_postfix(loss=f"{logs['loss']:.4g}", psnr=f"{logs['psnr']:.2f}")
            if header["batches_done"] < n_batches:  # mid-epoch (the epoch's end saves anyway)
                self._stop_if_signalled()
                self._stop_if_asked()
                if plan.save_every_steps and header["global_step"] % int(plan.save_every_steps) == 0:
                    self.checkpoint()
        bar.close()
        row = {"epoch": epoch, **state.epoch_means(header), "steps": header["global_step"]}
        row.update(self.test_scores())
        self.end_epoch(row)
        self.log(f"epoch {epoch + 1}/{n_epochs}: " + ", ".join(
            f"{k} {row[k]:.4g}" for k in ("loss", "psnr", "val_psnr", "val_ssim") if k in row))

    def _stop_if_signalled(self):
        """After a step or an epoch: save the state and stop if a signal asked for it."""
        stop_signal = interrupts.requested()
        if stop_signal is None:
            return
        step = self._leave("interrupted")  # run.json ends with this session, at this step
        self.log(f"interrupted: state saved at step {step}; run the same command again to continue")
        raise TrainingInterrupted(f"interrupted by {signal.Signals(stop_signal).name} at step"
                                  f" {step}", interrupts.EXIT_CODES[stop_signal])

    def _stop_if_asked(self):
        """After a step (and before the first): save the state and end the session normally if
        the ``stop`` hook asks for it. Not after the last step: the run finishes instead."""
        step = self.header["global_step"]
        if self.plan.stop is None or step >= self.plan.target or not self.plan.stop(step):
            return
        self._leave("stopped", summary=self._summary(stopped=True))
        self.log(f"stopped: state saved at step {step} of {self.plan.target}; run the same command"
                 " again to continue")
        raise _StopRequested(step)

    def _leave(self, status, summary=None):
        """End the session between two steps: the state saved, run.json marked ``status``, the
        session's cache removed. Returns the step it ended at."""
        self.checkpoint()
        self.record.write(status, summary=summary)
        _remove_cache(self.plan.out, created=isinstance(self.train_cache, str), chief=self.chief)
        return self.header["global_step"]

    def _epoch_batches(self, epoch, n_batches, done):
        """The epoch's batches in its seeded order, without the ``done`` ones already trained."""
        from menet_tf.data import train_dataset

        plan = self.plan
        ds = train_dataset(plan.train_pairs, batch_size=plan.config.train.batch_size,
                           crop_size=plan.config.train.crop_size,
                           seed=state.epoch_seed(plan.seed, epoch), cache=self.train_cache)
        return ds.take(n_batches).skip(done)

    def _distribute(self, ds):
        return self.strategy.experimental_distribute_dataset(ds) if self.strategy is not None else ds

    def step(self, iterator):
        """One optimizer step, booked into the header and written to TensorBoard."""
        model = self.model
        # The rate this step applies: the schedule counts applied updates
        # (optimizer.iterations), which a skipped non-finite step does not advance.
        lr = float(self.schedule(int(model.optimizer.iterations.numpy()))) if self.schedule else None
        model.reset_metrics()
        self.consistent = False
        logs = {k: float(v) for k, v in self.train_fn(iterator).items()}
        if lr is not None:
            logs["learning_rate"] = lr
        state.book_step(self.header, logs)
        self.consistent = True
        self.scalars.write("train", "step", logs, self.header["global_step"])
        return logs

    def test_scores(self):
        """``val_*`` scores of the current weights on the test set (none without one)."""
        if self.test_ds is None:
            return {}
        self.model.reset_metrics()
        test_iter = iter(self._distribute(self.test_ds))
        scores = None
        for _ in range(int(self.test_ds.cardinality())):
            scores = self.test_fn(test_iter)
        return {f"val_{k}": float(v) for k, v in scores.items()}

    def end_epoch(self, row):
        """Book the epoch's row, save the state, rewrite history.csv and curves.png."""
        self.consistent = False
        state.book_epoch(self.header, row, self.plan.per_epoch)
        self.consistent = True
        self.scalars.write_epoch(row)
        self.checkpoint()
        if self.chief:
            records.write_history(self.plan.out, self.header["history"])

    def checkpoint(self):
        """State on disk = state in memory; summaries up to here flushed with it."""
        header = self.header
        header["seconds"] = self.seconds_before + (time.perf_counter() - self.t_session)
        header["sessions"] = self.record.sessions()
        header["optimizer_iterations"] = int(self.model.optimizer.iterations.numpy())
        if self.chief:
            state.save_state(self.plan.state_path, self.model, header)
            self.scalars.flush()

    # -- finish -------------------------------------------------------------------------------

    def _summary(self, stopped=False):
        plan = self.plan
        return records.summary(plan.config, plan.out, self.header, plan.test_root,
                               self.header["seconds"], stopped=stopped)

    def stopped_summary(self):
        """The summary of a session the stop hook ended (no final model, no eval.json yet)."""
        return self._summary(stopped=True)

    def finish(self):
        """Final model (with its optimizer), test scores and the finished run record."""
        plan, header = self.plan, self.header
        _remove_cache(plan.out, created=isinstance(self.train_cache, str), chief=self.chief)
        seconds = header["seconds"]
        header["optimizer_iterations"] = int(self.model.optimizer.iterations.numpy())
        self._save_final_model()
        if self.chief:
            # Again: a run killed between its last checkpoint and these files continues here.
            records.write_history(plan.out, header["history"])
        summary = records.summary(plan.config, plan.out, header, plan.test_root, seconds)
        if plan.test_root and self.chief:
            last = records.write_eval(plan.out, plan.config, plan.test_root,
                                      plan.config.train.crop_size, header)
            self.log(f"test: PSNR {last['val_psnr']:.4f} dB, SSIM {last['val_ssim']:.4f}"
                     f" ({plan.test_root})")
        self.record.write("finished", summary=summary)
        written = [n for n in records.RUN_FILES if os.path.exists(os.path.join(plan.out, n))]
        self.log(f"wrote {plan.out}/" + ", ".join(written)
                 + (f", {records.TENSORBOARD_DIR}/" if self.scalars else ""))
        return summary

    def _save_final_model(self):
        """model.keras on the chief. Saving is collective under MultiWorkerMirroredStrategy, so
        the other workers save too, aside, and drop it."""
        if self.chief:
            _save_model(self.model, os.path.join(self.plan.out, records.FINAL_MODEL))
            return
        aside = worker_out_dir(self.plan.out, self.strategy)
        os.makedirs(aside, exist_ok=True)
        self.model.save(os.path.join(aside, records.FINAL_MODEL))
        shutil.rmtree(aside, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# helpers of the session

def _make_strategy(strategy):
    """None/"default" -> None (no scope); a name -> ``menet_tf.train.distribute.make_strategy``."""
    if strategy is None or strategy == "default":
        return None
    if isinstance(strategy, str):
        return make_strategy(strategy)
    return strategy


def _progress_bar(total, initial, desc, enabled):
    from menet_tf.progress import bar as progress_bar

    return progress_bar(total=total, initial=initial, desc=desc, unit="step", disable=not enabled,
                dynamic_ncols=True, leave=True)


def _train_cache(out, cache, strategy, chief=True):
    """What ``cache=True`` hands the training pipeline.

    Each epoch builds its own pipeline (its own data-order seed), so an in-memory cache would die
    with the epoch; decoded pairs go to files under OUT/.menet-train-cache instead, which every
    epoch of the session reads instead of decoding the PNGs again (disk: about the decoded size of
    the set). A cache this run made (it holds CACHE_MARK) is cleared at the start of each session
    (no stale lock or content after a kill) and at the end; a folder of that name the run did not
    make is refused, never deleted. A multi-worker run keeps the per-epoch memory cache (workers
    would share the folder).
    """
    folder = os.path.join(out, CACHE_DIR)
    made_here = os.path.isfile(os.path.join(folder, CACHE_MARK))
    _remove_cache(out, created=made_here, chief=chief)
    if not cache:
        return False
    if strategy is not None and type(strategy).__name__.startswith("MultiWorker"):
        return True
    if os.path.exists(folder):
        raise MenetError(f"{folder}: exists and was not made by this run; remove it or drop --cache")
    os.makedirs(folder)
    with open(os.path.join(folder, CACHE_MARK), "w"):
        pass
    return os.path.join(folder, "train")


def _remove_cache(out, created, chief):
    """Delete the run's cache folder: only if this run created it, and only on the chief."""
    if created and chief:
        shutil.rmtree(os.path.join(out, CACHE_DIR), ignore_errors=True)


def _schedule_of(optimizer):
    """The learning rate as a function of the step (schedule or constant), for the logs."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer wraps Adam
    lr = getattr(inner, "_learning_rate", None)
    if lr is None:
        return None
    if callable(lr):
        return lambda step: lr(step)
    return lambda step: lr


def _save_model(model, path):
    """``model.save`` into a temporary .keras file, then rename (Keras insists on the suffix)."""
    with files.replacing(path, suffix=".keras", what=" the model", error=CheckpointError) as tmp:
        model.save(tmp)
