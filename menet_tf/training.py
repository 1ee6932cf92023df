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

from menet_tf import losses as losses_lib
from menet_tf.config import ExperimentConfig
from menet_tf.errors import ConfigError
from menet_tf.network import MENET
from menet_tf.weighting import make_weighting


def _sum_over_replicas(values, reduce_op):
    """Task statistics must be global under tf.distribute (GB uses gradients summed over all
    replicas). A no-op with a single replica."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return values
    return ctx.all_reduce(reduce_op, values)


def image_metrics(clean, derained):
    """Mean PSNR and SSIM of a batch (tf.image, max_val 255, RGB), as the authors log them."""
    psnr = tf.reduce_mean(tf.image.psnr(derained, clean, max_val=255.0))
    ssim = tf.reduce_mean(tf.image.ssim(derained, clean, max_val=255.0))
    return psnr, ssim


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

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compute_task_losses(self, clean, derained):
        """[L_i] in task order, in float32."""
        clean = tf.cast(clean, tf.float32)
        derained = tf.cast(derained, tf.float32)
        return [task(clean, derained) for task in self.task_losses]

    def _forward(self, data, training):
        """Forward pass, task losses and weights, with the tape (for the training gradient)."""
        rainy, clean = _unpack(data)
        with tf.GradientTape(persistent=True) as tape:
            derained = self(rainy, training=training)
            task_losses = self.compute_task_losses(clean, derained)
        norms = None
        if self.weighting.needs_gradient_norms:
            shared = [tape.gradient(loss, self.shared_kernel) for loss in task_losses]
            shared = _sum_over_replicas(shared, tf.distribute.ReduceOp.SUM)
            norms = [tf.norm(g) for g in shared]
        weights = self.weighting(task_losses, norms)
        return tape, clean, derained, task_losses, weights

    def _log(self, clean, derained, task_losses, weights):
        objective = tf.add_n([w * l for w, l in zip(weights, task_losses)])
        psnr, ssim = image_metrics(tf.cast(clean, tf.float32), tf.cast(derained, tf.float32))
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
        sum_i w_i L_i with the w_i held constant is one backward pass over the tape.
        """
        tape, clean, derained, task_losses, weights = self._forward(data, training=training)
        gradients = tape.gradient(task_losses, self.trainable_variables, output_gradients=weights)
        del tape
        return gradients, (clean, derained, task_losses, weights)

    def train_step(self, data):
        gradients, terms = self.compute_gradients(data, training=True)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._log(*terms)

    def test_step(self, data):
        tape, clean, derained, task_losses, weights = self._forward(data, training=False)
        del tape
        return self._log(clean, derained, task_losses, weights)

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
    """"auto": XLA on GPUs only. On this project's 2-core CPU an XLA-compiled MENET-GB step
    (batch 20, 224x224) took 4.26 s against 2.05 s without XLA
    (benchmarks/bench_train_step.py), so a CPU runs the plain graph."""
    if setting == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return bool(setting)


def build_model(config, steps_per_epoch=None):
    """The compiled MultiTaskMENET of an ExperimentConfig (or a released model's name)."""
    if isinstance(config, str):
        from menet_tf.config import released_config

        config = released_config(config)
    if not isinstance(config, ExperimentConfig):
        raise ConfigError(f"build_model needs an ExperimentConfig or a name, got {type(config)}")
    model = MultiTaskMENET(
        depth=config.model.depth,
        attention=config.model.attention,
        tasks=config.loss.tasks,
        weighting=config.loss.weighting,
        task_weights=config.loss.task_weights,
        texture_form=config.loss.texture_form,
        vgg_weights=config.loss.vgg_weights,
    )
    model.ensure_built()
    model.compile(
        optimizer=make_optimizer(config.optimizer, steps_per_epoch),
        jit_compile=resolve_jit_compile(config.train.jit_compile),
    )
    # Create Adam's slots now, so a saved model carries them and loads without warnings.
    model.optimizer.build(model.trainable_variables)
    return model
