"""Multi-task training of MENET: the custom ``train_step``, the optimiser and ``build_model``.

One step, as in the released graphs:
1. forward pass in training mode (batch statistics; BN moving statistics are updated),
2. every task loss L_i on the de-rained batch,
3. if the weighting needs them, each task's gradient on the shared layer5 kernel and its norm,
4. weights w_i from the weighting scheme, held constant,
5. gradient of L = sum_i w_i L_i for every trainable variable, one Adam step.
Step 5 reuses the tape of step 1 with ``output_gradients=w``, so the network is run forward once.
"""
import keras
import tensorflow as tf

from menet_tf import precisions
from menet_tf.config import ExperimentConfig, released_config
from menet_tf.errors import ConfigError
from menet_tf.model import losses as losses_lib
from menet_tf.model.conv_gradient import conv_filter_gradient
from menet_tf.model.metrics import image_metrics
from menet_tf.model.network import MENET, record_shared_layer
from menet_tf.model.weighting import make_weighting


def _across_replicas(values, reduce_op):
    """``values`` reduced (SUM or MEAN) over the replicas: task statistics must be global under
    tf.distribute (GB uses gradients summed over all replicas). A no-op with a single replica."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return values
    return ctx.all_reduce(reduce_op, values)


def num_replicas():
    """Replicas computing this step together (1 outside tf.distribute)."""
    ctx = tf.distribute.get_replica_context()
    return 1 if ctx is None else ctx.num_replicas_in_sync


def all_finite(gradients):
    """True when every gradient of EVERY replica is finite, so all replicas skip a step alike."""
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients if g is not None])
    bad = _across_replicas(tf.cast(tf.logical_not(finite), tf.float32), tf.distribute.ReduceOp.SUM)
    return tf.equal(bad, 0.0)


def apply_if_finite(optimizer, gradients, variables, finite):
    """``optimizer.apply`` only when ``finite``: a NaN/Inf step changes nothing (weights, Adam
    slots, iterations). In the graph (tf.cond), so the step never leaves it.

    A LossScaleOptimizer skips non-finite steps itself (and halves its scale) but looks at one
    replica's gradients only, so it is given NaN gradients on every replica when any replica had
    one. Other optimizers are applied under a cond, taken in cross-replica context when the
    strategy needs merge_call (a cond may not hold a merge_call in replica context).
    """
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        poison = tf.where(finite, 0.0, float("nan"))
        optimizer.apply([None if g is None else g + tf.cast(poison, g.dtype) for g in gradients],
                        variables)
    elif tf.__internal__.distribute.strategy_supports_no_merge_call():
        _only_if(finite, lambda: optimizer.apply(gradients, variables))
    else:
        def cross_replica(distribution, gradients, finite):
            finite = distribution.experimental_local_results(finite)[0]  # alike on every replica
            _only_if(finite, lambda: distribution.extended.call_for_each_replica(
                lambda g: optimizer.apply(g, variables), args=(gradients,)))

        tf.distribute.get_replica_context().merge_call(cross_replica, args=(gradients, finite))


def _only_if(condition, action):
    """Run ``action`` (its result unused) in the graph only when ``condition`` holds."""

    def run():
        action()

    tf.cond(condition, run, lambda: None)


class ReplicatedCount(keras.metrics.Metric):
    """A per-epoch count of events every replica sees alike (skipped steps), or with
    ``last=True`` the latest value (the loss scale). Replicas hold equal values, so they are
    averaged rather than summed when read across replicas."""

    def __init__(self, name, last=False, **kwargs):
        super().__init__(name=name, **kwargs)
        self.last = last
        self.value = self.add_variable((), "zeros", dtype="float32", aggregation="mean", name="value")

    def update_state(self, value):
        value = tf.cast(value, "float32")
        if self.last:
            self.value.assign(value)
        else:
            self.value.assign_add(value)

    def reset_state(self):
        self.value.assign(0.0)

    def result(self):
        return tf.convert_to_tensor(self.value)

    def get_config(self):
        return {**super().get_config(), "last": self.last}


@keras.saving.register_keras_serializable(package="menet_tf")
class MultiTaskMENET(MENET):
    """MENET with its tasks and task weighting: ``fit`` / ``train_on_batch(rainy, clean)``.

    Logs of every step: ``loss`` (the minimised objective), each task loss by name, each task
    weight as ``weight_<task>``, ``psnr`` and ``ssim`` of the de-rained batch.
    """

    def __init__(
        self,
        depth=8,
        attention=False,
        tasks=("mse",),
        weighting="fixed",
        task_weights=None,
        texture_form="released",
        vgg_weights=None,
        **kwargs,
    ):
        super().__init__(depth=depth, attention=attention, **kwargs)
        tasks = tuple(tasks)
        if not tasks or len(set(tasks)) != len(tasks):
            raise ConfigError(f"tasks must be a non-empty list of distinct task names, got {tasks}")
        self.task_names = tasks
        self.weighting_scheme = weighting
        self.task_weights = dict(task_weights or {})
        self.texture_form = texture_form
        self.vgg_weights = vgg_weights
        self.task_losses = [losses_lib.make_task(t, texture_form, vgg_weights) for t in tasks]
        self.weighting = make_weighting(weighting, tasks, self.task_weights)
        log_names = ["loss", *tasks, *(f"weight_{t}" for t in tasks), "psnr", "ssim"]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in log_names}
        # Training only: steps skipped for a NaN/Inf gradient, and float16's dynamic loss scale.
        self.step_trackers = {"skipped_steps": ReplicatedCount("skipped_steps")}
        if self.compute_dtype == "float16":
            self.step_trackers["loss_scale"] = ReplicatedCount("loss_scale", last=True)

    @property
    def metrics(self):
        return [*self.trackers.values(), *self.step_trackers.values()]

    def compute_task_losses(self, clean, derained):
        """[L_i] in task order, in float32."""
        clean = tf.cast(clean, tf.float32)
        derained = tf.cast(derained, tf.float32)
        return [task(clean, derained) for task in self.task_losses]

    def _forward(self, data, training):
        """Forward pass, task losses and weights, with the tape (for the training gradient).

        Returns (tape, clean, derained, task_losses, global_losses, weights): ``task_losses``
        are this replica's (on the tape), ``global_losses`` their mean over replicas = the
        losses of the global batch (equal shards), from which LB takes its weights.
        """
        rainy, clean = _unpack(data)
        with tf.GradientTape(persistent=True) as tape, record_shared_layer() as shared:
            derained = self(rainy, training=training)
            task_losses = self.compute_task_losses(clean, derained)
        global_losses = _across_replicas(task_losses, tf.distribute.ReduceOp.MEAN)
        norms = None
        if self.weighting.needs_gradient_norms:
            norms = self._shared_gradient_norms(
                tape, task_losses, shared[-1] if len(shared) == 1 else None
            )
        weights = self.weighting(global_losses, norms)
        return tape, clean, derained, task_losses, global_losses, weights

    def _shared_gradient_norms(self, tape, task_losses, shared_io=None):
        """[||dL_i/dK5||_F] of the global batch, in float32: each replica's gradient of its
        L_i / num_replicas, summed over replicas.

        With ``shared_io`` = (layer5 input, layer5 output) recorded in the forward pass, each
        task's gradient is taken only down to layer5's output (the few ops between layer5 and
        the losses), and the kernel gradients of all tasks come from ONE filter gradient
        (``conv_gradient.conv_filter_gradient``) with the tasks' output gradients stacked on the
        channel axis (the kernel gradient is linear in them, so this is the same math as one
        tape.gradient per task and kernel).

        In float16 the texture gradient (L_t ~ 1e14) would overflow, so each task's gradient is
        taken of S * L_i / L_i (denominator constant, S the loss scale) and multiplied back by
        L_i / S in float32: the same value, with half-precision intermediates of order S.
        """
        seeds, factors = self._norm_seeds(task_losses)
        if shared_io is None:
            gradients = [tape.gradient(loss, self.shared_kernel, output_gradients=seed)
                         for loss, seed in zip(task_losses, seeds)]
        else:
            gradients = self._kernel_gradients_from_layer5(tape, task_losses, seeds, *shared_io)
        shared = [tf.cast(g, tf.float32) * f for g, f in zip(gradients, factors)]
        shared = _across_replicas(shared, tf.distribute.ReduceOp.SUM)
        return [tf.norm(g) for g in shared]

    def _norm_seeds(self, task_losses):
        """(output gradients, factors) with which each task's kernel gradient, times its factor,
        is this replica's share of dL_i/dK5: 1 / num_replicas, or in float16 S / L_i then
        L_i / (S * num_replicas)."""
        share = 1.0 / num_replicas()
        if self.compute_dtype != "float16":
            return [None] * len(task_losses), [share] * len(task_losses)
        scale = self._loss_scale()
        scale = tf.constant(1.0) if scale is None else scale
        seeds = [tf.math.divide_no_nan(scale, loss) for loss in task_losses]
        return seeds, [loss * share / scale for loss in task_losses]

    def _kernel_gradients_from_layer5(self, tape, task_losses, seeds, x5, y5):
        """Each task's gradient down to layer5's output y5, then all tasks' kernel gradients as
        one filter gradient of layer5's input x5 with those output gradients stacked."""
        outputs = [tape.gradient(loss, y5, output_gradients=seed)
                   for loss, seed in zip(task_losses, seeds)]
        sizes = [*self.shared_kernel.shape[:3], y5.shape[-1] * len(outputs)]  # static, for XLA too
        stacked = conv_filter_gradient(x5, tf.concat(outputs, axis=-1), sizes)
        gradients = tf.split(stacked, len(outputs), axis=-1)
        if self.compute_dtype != "float16":  # float16's outputs carry S / L_i, not 1
            tape.menet_shared_tail = (y5, outputs, gradients)  # for _objective_gradients
        return gradients

    def _loss_scale(self):
        """The current dynamic loss scale (float16), None without loss scaling."""
        optimizer = getattr(self, "optimizer", None)
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return tf.cast(optimizer.scale_loss(tf.constant(1.0)), tf.float32)
        return None

    def _log(self, clean, derained, task_losses, weights):
        """Update and read the trackers (task losses: the global ones)."""
        objective = tf.add_n([w * l for w, l in zip(weights, task_losses)])
        psnr, ssim = image_metrics(tf.cast(clean, tf.float32), tf.cast(derained, tf.float32))
        # Global too, so every logged value is the same on every replica.
        psnr, ssim = _across_replicas([psnr, ssim], tf.distribute.ReduceOp.MEAN)
        values = {"loss": objective, "psnr": psnr, "ssim": ssim}
        for name, loss, weight in zip(self.task_names, task_losses, weights):
            values[name] = loss
            values[f"weight_{name}"] = weight
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def compute_gradients(self, data, training=True):
        """Gradients of the objective for ``self.trainable_variables``, and the step's terms.

        Returns (gradients, (clean, derained, task_losses, weights)). The gradient of
        sum_i w_i L_i with the w_i held constant is one backward pass over the tape. Under
        tf.distribute these are this replica's share: summed over replicas (as the optimizer
        does) they give the global batch's gradient; task_losses are the global ones.
        """
        gradients, terms, scale = self._scaled_gradients(data, training)
        if scale is not None:
            gradients = [None if g is None else g / tf.cast(scale, g.dtype) for g in gradients]
        return gradients, terms

    def _scaled_gradients(self, data, training):
        """compute_gradients, multiplied by the loss scale S when there is one (float16): the
        single backward pass starts from w_i * S / num_replicas on each L_i."""
        tape, clean, derained, task_losses, global_losses, weights = self._forward(data, training)
        scale = self._loss_scale()
        factor = 1.0 / num_replicas() if scale is None else scale / num_replicas()
        seeds = [w * factor for w in weights]
        gradients = self._objective_gradients(tape, task_losses, seeds)
        del tape
        return gradients, (clean, derained, global_losses, weights), scale

    def _objective_gradients(self, tape, task_losses, seeds):
        """d(sum_i seeds_i L_i) / d(trainable variables), one backward pass over the tape.

        When the GB norms already took each task's gradient at layer5's output
        (``tape.menet_shared_tail``), the pass starts there: sum_i seeds_i dL_i/dy5 (in float32)
        is back-propagated once through the network, and layer5's kernel gets
        sum_i seeds_i dL_i/dK5; the ops after layer5 are not run a fourth time. Same math.
        """
        tail = getattr(tape, "menet_shared_tail", None)
        if tail is None:
            return tape.gradient(task_losses, self.trainable_variables, output_gradients=seeds)
        y5, outputs, kernel_gradients = tail
        weighted = lambda terms: tf.add_n(  # noqa: E731
            [tf.cast(s, tf.float32) * tf.cast(t, tf.float32) for s, t in zip(seeds, terms)]
        )
        kernel = self.shared_kernel
        others = [v for v in self.trainable_variables if v is not kernel]
        upstream = iter(tape.gradient(y5, others, output_gradients=tf.cast(weighted(outputs), y5.dtype)))
        kernel_gradient = tf.cast(weighted(kernel_gradients), kernel.dtype)
        return [kernel_gradient if v is kernel else next(upstream) for v in self.trainable_variables]

    def train_step(self, data):
        # Scaled gradients go to a LossScaleOptimizer, which unscales them itself.
        gradients, terms, scale = self._scaled_gradients(data, training=True)
        finite = all_finite(gradients)
        apply_if_finite(self.optimizer, gradients, self.trainable_variables, finite)
        self.step_trackers["skipped_steps"].update_state(1.0 - tf.cast(finite, tf.float32))
        if "loss_scale" in self.step_trackers and scale is not None:
            self.step_trackers["loss_scale"].update_state(self._loss_scale())
        logs = self._log(*terms)
        logs.update({name: t.result() for name, t in self.step_trackers.items()})
        return _for_keras_reduction(logs)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras' fit first builds the model from a batch averaged over the replicas with
        strategy.reduce, which fails under MultiWorkerMirroredStrategy (Keras 3.15). Nothing
        needs it here: build_model builds the model and its optimizer, and there are no
        compiled losses or metrics."""
        if self.built and getattr(self, "optimizer", None) is not None and self.optimizer.built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def test_step(self, data):
        tape, clean, derained, _, global_losses, weights = self._forward(data, training=False)
        del tape
        return _for_keras_reduction(self._log(clean, derained, global_losses, weights))

    def get_config(self):
        config = super().get_config()
        config.update(
            tasks=list(self.task_names),
            weighting=self.weighting_scheme,
            task_weights=self.task_weights,
            texture_form=self.texture_form,
            vgg_weights=self.vgg_weights,
        )
        return config


def _for_keras_reduction(logs):
    """Keras 3.15 averages step logs over multi-worker replicas with strategy.reduce(MEAN,
    axis=0), which fails on scalars; a [1] vector per replica reduces to the scalar mean."""
    strategy = tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        strategy.extended._in_multi_worker_mode()
    ):
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}
    return logs


def _unpack(data):
    rainy, clean, _ = keras.utils.unpack_x_y_sample_weight(data)
    if clean is None:
        raise ConfigError("training and evaluation need (rainy, clean) pairs; got rainy images only")
    return rainy, clean


def make_optimizer(config, steps_per_epoch=None):
    """Adam (epsilon 1e-8) with the staircase exponential decay of the released scripts.

    With ``steps_per_epoch`` the decay happens every ``decay_epochs`` epochs of this training
    set; without it, every ``decay_steps`` steps (36000, the RainTrainH value).
    """
    decay_steps = config.decay_steps
    if steps_per_epoch:
        decay_steps = int(steps_per_epoch) * config.decay_epochs
    schedule = keras.optimizers.schedules.ExponentialDecay(
        config.learning_rate, decay_steps, config.decay_rate, staircase=config.staircase
    )
    return keras.optimizers.Adam(
        learning_rate=schedule,
        beta_1=config.beta_1,
        beta_2=config.beta_2,
        epsilon=config.epsilon,
    )


def resolve_jit_compile(setting):
    """Whether to compile with XLA: "auto" on GPUs only, "on"/"off" or a bool as given.

    Why not on a CPU: the plain graph runs TensorFlow's oneDNN convolutions there, which XLA's
    CPU backend does not use, and an XLA-compiled MENET-GB training step measured several times
    slower than the plain graph (docs/speed.md, "XLA")."""
    if setting == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    if setting in ("on", "off"):
        return setting == "on"
    return bool(setting)


def build_model(config, steps_per_epoch=None):
    """The compiled MultiTaskMENET of an ExperimentConfig (or a released model's name)."""
    if isinstance(config, str):
        config = released_config(config)
    if not isinstance(config, ExperimentConfig):
        raise ConfigError(f"build_model needs an ExperimentConfig or a name, got {type(config)}")
    precision = precisions.policy(config.train.precision)  # a Keras policy: float32, mixed_*
    model = MultiTaskMENET(
        depth=config.model.depth,
        attention=config.model.attention,
        tasks=config.loss.tasks,
        weighting=config.loss.weighting,
        task_weights=config.loss.task_weights,
        texture_form=config.loss.texture_form,
        vgg_weights=config.loss.vgg_weights,
        dtype=precision,
        sync_batch_norm=config.train.sync_batch_norm,
    )
    model.ensure_built()
    optimizer = make_optimizer(config.optimizer, steps_per_epoch)
    if precision == "mixed_float16":
        # Dynamic loss scale: doubled after 2000 finite steps, halved (step skipped) on overflow.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        jit_compile=resolve_jit_compile(config.train.jit_compile),
    )
    # Create Adam's slots now, so a saved model carries them and loads without warnings.
    model.optimizer.build(model.trainable_variables)
    return model
