"""The authors' released TF1 training graphs, run as they are, beside the eager port.

Each graph runs with ``tf.compat.v1`` in its own ``tf.Graph`` and ``Session``, so the rest of
the process stays in eager mode. What running them needs (TensorFlow 2.21):

- Their inputs ``syn`` (rainy) and ``bg`` (clean) are fixed [20, 224, 224, 3]. We feed new
  placeholders [None, None, None, 3], which the forward pass accepts at any batch and size, but
  the gradient ops carry the [20, 224, 224, 3] shapes as constants (and the texture loss
  reshapes to [20, -1, 48]), so losses, weights, gradients and Adam steps need exactly that
  shape (``train_shape``); inference runs at any.
- The training graph's batch norms read batch statistics. Inference imports the forward pass a
  second time with its batch norms reading the moving statistics
  (``graphs.inference_graph_def``), sharing the training import's variables (so both always
  see the same weights).
"""
import os

import numpy as np
import tensorflow as tf

from menet_tf.authors.checkpoint import ADAM_SLOT, MOVING_STATISTIC, WEIGHTS_ELSEWHERE, has_data
from menet_tf.authors.graphs import BN_OPS, analyse, inference_graph_def, input_shape, read_meta_graph
from menet_tf.errors import CheckpointError, MenetError

_ANY_IMAGES = [None, None, None, 3]


class AuthorsGraph:
    """An authors' released training graph in its own tf.Graph and tf.compat.v1.Session.

    ``variables()`` / ``assign()`` / ``restore()`` / ``initialise()`` set and read its state;
    ``infer()`` runs the forward pass with moving statistics (any batch, any size the network
    divides); ``step()`` gives the task losses, task weights, objective and PSNR of a training
    batch and, with ``train=True``, applies one Adam step (BN statistics updated, as the graph
    does); ``gradients()`` gives the gradient of the objective for every trainable variable.
    Calls that do not train leave every variable as it was.
    """

    def __init__(self, meta_path, name=None):
        self.meta_path = os.fspath(meta_path)
        self.name = name or os.path.basename(os.path.dirname(os.path.abspath(self.meta_path)))
        meta_graph = read_meta_graph(self.meta_path)
        self.layout = analyse(meta_graph, self.meta_path)
        self.tasks = self.layout.tasks
        self.train_shape = input_shape(meta_graph, "syn")
        self.graph = tf.Graph()
        with self.graph.as_default():
            self._import_training(meta_graph)
            self._find_fetches()
            self._import_inference(meta_graph)
            self._saver = tf.compat.v1.train.Saver(
                var_list=self._variables, sharded=False, write_version=tf.compat.v1.train.SaverDef.V2)
            self._init = tf.compat.v1.global_variables_initializer()
        self.graph.finalize()
        self.session = tf.compat.v1.Session(graph=self.graph)
        self.session.run(self._init)

    def _import_training(self, meta_graph):
        """The training graph, fed by placeholders of any shape instead of its fixed inputs."""
        self._rainy = tf.compat.v1.placeholder(tf.float32, _ANY_IMAGES, "rainy")
        self._clean = tf.compat.v1.placeholder(tf.float32, _ANY_IMAGES, "clean")
        self._infer_in = tf.compat.v1.placeholder(tf.float32, _ANY_IMAGES, "infer_rainy")
        try:
            tf.compat.v1.train.import_meta_graph(
                meta_graph, input_map={"syn:0": self._rainy, "bg:0": self._clean},
                clear_devices=True)
        except (ValueError, tf.errors.OpError) as err:
            raise CheckpointError(f"{self.meta_path}: cannot import the graph ({err})") from None
        self._variables = {v.op.name: v for v in tf.compat.v1.global_variables()}
        self.trainable = [v.op.name for v in tf.compat.v1.trainable_variables()]
        self.moving = sorted(n for n in self._variables if MOVING_STATISTIC.search(n))

    def _find_fetches(self):
        """The tensors ``step`` and ``gradients`` fetch, where the layout says they are."""
        g, layout = self.graph, self.layout
        self._train_op = g.get_collection("train_op")[0]
        self._output = g.get_tensor_by_name("derain/output:0")
        self._losses = {t: g.get_tensor_by_name(n) for t, n in layout.losses.items()}
        self._weights = {
            t: (tf.constant(w, tf.float32) if isinstance(w, float) else g.get_tensor_by_name(w))
            for t, w in layout.weights.items()
        }
        self._objective = g.get_tensor_by_name(layout.objective)
        self._gradients = {v: g.get_tensor_by_name(n) for v, n in layout.gradients.items()}
        self._psnr = tf.reduce_mean(tf.image.psnr(self._output, self._clean, max_val=255.0))
        # Not in the released graph; added so a benchmark can ask it for the same logs the
        # port computes every step (menet_tf.bench.speed times both doing the same work).
        self._ssim = tf.reduce_mean(tf.image.ssim(self._output, self._clean, max_val=255.0))
        self._batch_stats = {}
        for op in g.get_operations():
            if op.type in BN_OPS and op.name.startswith("derain/"):
                scope = op.name.rsplit("/", 1)[0]
                self._batch_stats[scope] = (op.outputs[1], op.outputs[2])

    def _import_inference(self, meta_graph):
        """The forward pass again, batch norms on moving statistics, on the same variables."""
        g = self.graph
        inference_def, reads = inference_graph_def(meta_graph.graph_def)
        input_map = {f"{r}:0": g.get_tensor_by_name(f"{r}:0") for r in reads}
        input_map["syn:0"] = self._infer_in
        (self._infer_out,) = tf.import_graph_def(
            inference_def, input_map=input_map, return_elements=["derain/output:0"],
            name="inference")

    # -- state ------------------------------------------------------------------------------

    @property
    def shapes(self):
        return {n: tuple(v.shape.as_list()) for n, v in self._variables.items()}

    def variables(self):
        """{TF1 name: ndarray} of every variable: weights, BN statistics, Adam state, step."""
        return self.session.run(self._variables)

    def assign(self, values):
        """Set variables from {TF1 name: array}; unknown names or wrong shapes are refused."""
        unknown = sorted(set(values) - set(self._variables))
        if unknown:
            raise CheckpointError(f"{self.meta_path}: the graph has no variables {unknown[:5]}")
        feed, ops = {}, []
        for name, value in values.items():
            var = self._variables[name]
            value = np.asarray(value, var.dtype.base_dtype.as_numpy_dtype)
            if tuple(value.shape) != tuple(var.shape.as_list()):
                raise CheckpointError(
                    f"{self.meta_path}: {name} has shape {list(var.shape)}, got {list(value.shape)}")
            feed[var.initial_value] = value
            ops.append(var.initializer)
        if ops:
            self.session.run(ops, feed)

    def restore(self, prefix):
        """Every variable from a TF1 checkpoint (the released ``model.final-100`` or ours)."""
        prefix = os.fspath(prefix)
        if not has_data(prefix):
            raise CheckpointError(f"{prefix}: no .data file beside the index ({WEIGHTS_ELSEWHERE})")
        try:
            with self.graph.as_default():  # the Saver runs its graph ops only in graph mode
                self._saver.restore(self.session, prefix)
        except (tf.errors.OpError, ValueError) as err:
            message = getattr(err, "message", str(err)).splitlines()[0]
            raise CheckpointError(f"{prefix}: cannot restore into {self.meta_path} ({message})") from None

    def save(self, prefix):
        """Write every variable as a TF1 checkpoint (what ``menet_tf.authors.checkpoint`` imports)."""
        with self.graph.as_default():
            return self._saver.save(self.session, os.fspath(prefix), write_meta_graph=False)

    def reset_optimizer(self):
        """Adam as at the start of training: zero slots, beta powers = beta, global step 0."""
        values = {}
        for name, var in self._variables.items():
            shape = var.shape.as_list()
            dtype = var.dtype.base_dtype.as_numpy_dtype
            if ADAM_SLOT.search(name) or name == "global_step":
                values[name] = np.zeros(shape, dtype)
            elif name == "beta1_power":
                values[name] = np.asarray(self.layout.beta_1, dtype)
            elif name == "beta2_power":
                values[name] = np.asarray(self.layout.beta_2, dtype)
        self.assign(values)

    def initialise(self, seed=0, calibration=None):
        """Seeded weights instead of a trained checkpoint, with a fresh optimizer.

        Kernels: truncated normal, std sqrt(1/fan_in) (the graphs' own initialiser); gamma and
        beta near 1 and 0, randomly off so a port that ignores them is caught. Moving statistics
        are set near the batch statistics of a training-mode pass on ``calibration`` (a seeded
        synthetic batch by default), randomly off, so inference outputs are realistic images,
        not clipped ones, and a port that uses batch statistics in inference is caught.
        """
        rng = np.random.default_rng(seed)
        self.assign(self._seeded_weights(rng))
        self.reset_optimizer()
        if calibration is None:
            calibration = synthetic_batch(4, 64, seed=seed + 1)[0]
        self.assign(self._calibrated_statistics(calibration, rng))

    def _seeded_weights(self, rng):
        """Kernels, gamma and beta drawn from ``rng``; moving statistics 0 and 1 until calibrated."""
        values = {}
        for name, var in self._variables.items():
            shape = var.shape.as_list()
            if not name.startswith("derain/"):
                continue
            if name.endswith("/kernel"):
                std = (1.0 / np.prod(shape[:-1])) ** 0.5 / 0.87962566
                values[name] = np.clip(rng.standard_normal(shape), -2, 2) * std
            elif name.endswith("/gamma"):
                values[name] = rng.uniform(0.8, 1.2, shape)
            elif name.endswith("/beta"):
                values[name] = rng.normal(0.0, 0.1, shape)
            elif name.endswith("/moving_mean"):
                values[name] = np.zeros(shape)
            elif name.endswith("/moving_variance"):
                values[name] = np.ones(shape)
        return values

    def _calibrated_statistics(self, calibration, rng):
        """Moving statistics near the batch statistics of ``calibration``, randomly off."""
        stats = self.session.run(self._batch_stats, {self._rainy: calibration})
        values = {}
        for scope, (mean, variance) in stats.items():
            values[f"{scope}/moving_mean"] = mean + 0.1 * np.sqrt(variance) * rng.standard_normal(mean.shape)
            values[f"{scope}/moving_variance"] = variance * rng.uniform(0.7, 1.3, variance.shape)
        return values

    # -- running ----------------------------------------------------------------------------

    def _check_batch(self, rainy):
        if tuple(rainy.shape) != self.train_shape:
            raise MenetError(
                f"{self.meta_path}: the authors' training graph runs on batches of exactly"
                f" {list(self.train_shape)} (its gradient ops carry that shape); got"
                f" {list(rainy.shape)}")

    def infer(self, rainy):
        """De-rained images (moving statistics) of float [N, H, W, 3] in 0..255."""
        return self.session.run(self._infer_out, {self._infer_in: np.asarray(rainy, np.float32)})

    def _run_keeping_state(self, fetches, feed):
        """Run ``fetches`` and undo the BN updates the graph ties to its gradients."""
        saved = self.session.run({n: self._variables[n] for n in self.moving})
        try:
            return self.session.run(fetches, feed)
        finally:
            self.assign(saved)

    def step(self, rainy, clean, train=False, ssim=False):
        """{loss (objective), <task>, weight_<task>, psnr} of one training-mode batch; one Adam
        step (and the BN statistics' update) when ``train``. ``ssim`` also computes the batch
        SSIM, which the port logs every step."""
        rainy, clean = np.asarray(rainy, np.float32), np.asarray(clean, np.float32)
        self._check_batch(rainy)
        fetches = {"loss": self._objective, "psnr": self._psnr}
        if ssim:
            fetches["ssim"] = self._ssim
        for t in self.tasks:
            fetches[t] = self._losses[t]
            fetches[f"weight_{t}"] = self._weights[t]
        feed = {self._rainy: rainy, self._clean: clean}
        if train:
            out = self.session.run({**fetches, "_train": self._train_op}, feed)
            out.pop("_train")
        else:
            out = self._run_keeping_state(fetches, feed)
        return {k: float(v) for k, v in out.items()}

    def gradients(self, rainy, clean):
        """{trainable variable name: gradient of the objective} for one training-mode batch."""
        rainy, clean = np.asarray(rainy, np.float32), np.asarray(clean, np.float32)
        self._check_batch(rainy)
        return self._run_keeping_state(self._gradients, {self._rainy: rainy, self._clean: clean})

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def synthetic_batch(batch_size=20, size=224, seed=0):
    """A seeded (rainy, clean) float32 batch in 0..255: smooth random scenes plus streaks.

    Not natural images, but with the spatial structure and value range the losses and batch
    norms see on real crops, so a comparison on it exercises every op."""
    rng = np.random.default_rng(seed)
    h = w = int(size)
    clean = np.empty([batch_size, h, w, 3], np.float32)
    rainy = np.empty_like(clean)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    for i in range(batch_size):
        img = np.zeros([h, w, 3])
        for _ in range(6):  # a few smooth waves per channel
            f = rng.uniform(0.5, 6.0, 2)
            phase = rng.uniform(0, 2 * np.pi, 3)
            img += np.sin(2 * np.pi * (f[0] * yy + f[1] * xx)[..., None] + phase) * rng.uniform(10, 40)
        img = 128 + img + rng.normal(0, 4, img.shape)
        clean[i] = np.clip(img, 0, 255)
        streaks = np.zeros([h, w])
        for _ in range(max(4, h * w // 400)):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            length = rng.integers(4, 16)
            ys = np.clip(y0 + np.arange(length), 0, h - 1)
            xs = np.clip(x0 + (np.arange(length) * 0.3).astype(int), 0, w - 1)
            streaks[ys, xs] = rng.uniform(60, 140)
        rainy[i] = np.clip(clean[i] + streaks[..., None], 0, 255)
    return rainy, clean
