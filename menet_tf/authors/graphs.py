"""The authors' released TF1 training graphs, run as they are: the one loader of ``.meta`` files.

The authors (github SumiHui/MENET) released, for every model, the TF1 training graph
(``model.final-100.meta``: network, task losses, task weights, Adam) and the checkpoint. This
module reads such a graph as data and runs it with ``tf.compat.v1`` in its own ``tf.Graph`` and
``Session``, so the rest of the process stays in eager mode. It is what ``menet-tf
compare-authors`` and ``menet-tf bench --authors`` measure the port against; nothing of the
authors' source code is needed or copied.

What the graphs need (measured with TensorFlow 2.21):

- ``import_meta_graph`` refuses them until the stale ``_output_shapes`` attributes are dropped.
- Their inputs ``syn`` (rainy) and ``bg`` (clean) are fixed [20, 224, 224, 3]. We feed new
  placeholders [None, None, None, 3], which the forward pass accepts at any batch and size, but
  the gradient ops carry the [20, 224, 224, 3] shapes as constants (and the texture loss
  reshapes to [20, -1, 48]), so losses, weights, gradients and Adam steps need exactly that
  shape (``train_shape``); inference runs at any.
- The training graph's batch norms read batch statistics. Inference imports the forward pass a
  second time with every ``FusedBatchNorm`` switched to ``is_training=False`` and fed the moving
  statistics, sharing the training import's variables (so both always see the same weights).
- Losses, task weights, the objective and each variable's gradient are found by walking the
  graph (the ``losses`` collection, the ``ApplyAdam`` ops and the gradient scope they read), not
  by trusting node names, which differ between models.
"""
import dataclasses
import glob
import os
import re

import numpy as np
import tensorflow as tf

from menet_tf.authors import checkpoint as tf1
from menet_tf.errors import CheckpointError, MenetError

_BN_OPS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
_ADAM_OPS = ("ApplyAdam", "ResourceApplyAdam")
_MOVING = re.compile(r"/moving_(mean|variance)$")
_SLOT = re.compile(r"/Adam(_1)?$")
FINAL_CHECKPOINT = "model.final-100"


# ---------------------------------------------------------------------------------------------
# finding the released models


@dataclasses.dataclass
class ReleasedModel:
    """One released model: its training graph and checkpoint prefix (``.data`` may be absent)."""

    name: str
    meta_path: str
    checkpoint_prefix: str
    has_data: bool
    release: str = ""  # "light" (Rain100L) or "heavy" (Rain100H) when the folder says so

    @property
    def key(self):
        """Unique within a clone that holds both releases: ``light/ModelShallowNew``."""
        return f"{self.release}/{self.name}" if self.release else self.name


def find_released(source):
    """Every released model under ``source``: a clone of the authors' repository
    (``heavy|light/model_params/<Model>/model.final-100.meta``) or a folder laid out like
    ``authors_graphs/`` (``heavy|light/<Model>/model.final-100.meta``), or one model's folder.
    Sorted by release then name. Raises MenetError when there is none."""
    source = os.fspath(source)
    if not os.path.isdir(source):
        raise MenetError(f"{source}: not a folder (expected a clone of the authors' MENET repository"
                         " or a folder laid out like authors_graphs/)")
    metas = []
    for depth in range(0, 4):
        metas += glob.glob(os.path.join(source, *(["*"] * depth), "*.meta"))
    found = {}
    for meta in sorted(set(metas)):
        prefix = meta[: -len(".meta")]
        if not os.path.exists(prefix + ".index"):
            continue
        parts = os.path.relpath(meta, source).split(os.sep)
        name = parts[-2] if len(parts) >= 2 else os.path.basename(os.path.abspath(source))
        release = next((p for p in parts[:-2] if p in ("heavy", "light")), "")
        has_data = tf1.has_data(prefix)
        model = ReleasedModel(name, meta, prefix, has_data, release)
        # Several checkpoints of one model: keep the final one.
        if model.key in found and not os.path.basename(prefix) == FINAL_CHECKPOINT:
            continue
        found[model.key] = model
    if not found:
        raise MenetError(f"{source}: no released model found (no <Model>/*.meta beside a .index)")
    return sorted(found.values(), key=lambda m: (m.release, m.name))


def select(models, variants):
    """The models named in ``variants`` (name, ``release/name`` or paper alias); all if empty."""
    if not variants:
        return list(models)
    from menet_tf.config import ALIASES

    chosen = []
    for v in variants:
        want = ALIASES.get(v, v)
        hits = [m for m in models if want in (m.name, m.key)]
        if not hits:
            raise MenetError(
                f"no released model {v!r} found; found: {', '.join(m.key for m in models)}"
            )
        chosen += [m for m in hits if m not in chosen]
    return chosen


def missing_data_note(model):
    """The one line a user sees when only the checkpoint index is there."""
    return (f"{model.checkpoint_prefix}: no .data file (the trained weights ship in the authors'"
            " repository, github SumiHui/MENET); using a seeded initialisation")


# ---------------------------------------------------------------------------------------------
# reading the graph


def read_meta_graph(meta_path):
    """The MetaGraphDef of a ``.meta`` file, with the ``_output_shapes`` attributes removed."""
    meta_graph = tf.compat.v1.MetaGraphDef()
    try:
        with open(meta_path, "rb") as f:
            meta_graph.ParseFromString(f.read())
    except OSError as err:
        raise CheckpointError(f"{meta_path}: cannot read ({err.strerror})") from None
    except Exception as err:  # protobuf DecodeError
        raise CheckpointError(f"{meta_path}: not a TF1 MetaGraphDef ({err})") from None
    for node in meta_graph.graph_def.node:
        node.attr.pop("_output_shapes", None)
    names = {n.name for n in meta_graph.graph_def.node}
    if not {"syn", "bg", "derain/output"} <= names:
        raise CheckpointError(f"{meta_path}: not a MENET training graph (no syn/bg/derain/output)")
    return meta_graph


def _op_name(tensor_name):
    return tensor_name.lstrip("^").split(":")[0]


def _ancestors(nodes, start, stop):
    """Names of the ops ``start`` depends on (data inputs only), not walking past ``stop``."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name in stop:
            continue
        seen.add(name)
        todo += [_op_name(i) for i in nodes[name].input if not i.startswith("^")]
    return seen


def _classify_loss(nodes, loss_op):
    """Which task a loss of the ``losses`` collection is, from the ops it is made of."""
    ops = {nodes[n].op for n in _ancestors(nodes, loss_op, {"derain/output", "bg", "syn"})}
    names = _ancestors(nodes, loss_op, {"derain/output", "bg", "syn"})
    if "BatchMatMul" in ops or "BatchMatMulV2" in ops:
        return "texture"
    if "DepthwiseConv2dNative" in ops or "MirrorPad" in ops:
        return "edge"
    if any("vgg" in n.lower() for n in names):
        return "vgg"
    return "mse"


def _sum_terms(nodes, name):
    """The terms of a sum ``a + b + ...`` (nested Add/AddV2/AddN)."""
    node = nodes[name]
    if node.op in ("Add", "AddV2", "AddN"):
        terms = []
        for i in node.input:
            if not i.startswith("^"):
                terms += _sum_terms(nodes, _op_name(i))
        return terms
    return [name]


@dataclasses.dataclass
class GraphLayout:
    """Where things are in one training graph (tensor names), found by walking it."""

    tasks: tuple  # task names, in the order of the objective's terms
    losses: dict  # task -> loss tensor name
    weights: dict  # task -> weight tensor name, or a float for a bare term (weight 1)
    objective: str
    gradients: dict  # trainable variable name -> gradient tensor name
    batch_size: int  # batch the training graph needs (its texture reshape), or 0 for any
    learning_rate: float
    decay_steps: int
    beta_1: float
    beta_2: float
    epsilon: float


def _const(nodes, name):
    node = nodes.get(name)
    if node is None or node.op != "Const":
        return None
    return tf.make_ndarray(node.attr["value"].tensor)


def analyse(meta_graph, where="graph"):
    """Walk a MetaGraphDef and return its GraphLayout."""
    nodes = {n.name: n for n in meta_graph.graph_def.node}
    adam = [n for n in meta_graph.graph_def.node if n.op in _ADAM_OPS]
    if not adam:
        raise CheckpointError(f"{where}: no Adam update in this graph (not a training graph)")
    gradients = {_op_name(n.input[0]): n.input[9] for n in adam}
    scope = gradients[next(iter(gradients))].split("/")[0]
    seed = f"{scope}/Fill"
    objective = None
    for n in meta_graph.graph_def.node:
        if seed in n.input and n.name.startswith(scope + "/"):
            m = re.match(rf"^{re.escape(scope)}/(.+?)_grad/", n.name)
            if m and m.group(1) in nodes:
                objective = m.group(1)
                break
    if objective is None:
        raise CheckpointError(f"{where}: cannot find the objective the Adam step differentiates")
    loss_names = [_op_name(t) for t in meta_graph.collection_def["losses"].node_list.value]
    by_op = {}
    for op in loss_names:
        task = _classify_loss(nodes, op)
        if task in by_op:
            raise CheckpointError(f"{where}: two losses look like the {task} task")
        by_op[op] = task
    weights, order = {}, []
    for term in _sum_terms(nodes, objective):
        node = nodes[term]
        if term in by_op:
            weights[by_op[term]] = 1.0
            order.append(by_op[term])
            continue
        if node.op != "Mul":
            raise CheckpointError(f"{where}: objective term {term} ({node.op}) is not weight * loss")
        a, b = (_op_name(i) for i in node.input[:2])
        loss, weight = (a, b) if a in by_op else (b, a)
        if loss not in by_op:
            raise CheckpointError(f"{where}: objective term {term} multiplies no task loss")
        weights[by_op[loss]] = weight + ":0"
        order.append(by_op[loss])
    if set(order) != set(by_op.values()):
        raise CheckpointError(f"{where}: the objective does not use every task loss")
    batch = 0  # a loss that reshapes to a constant batch (the texture Gram) fixes the batch
    behind_losses = set().union(*(_ancestors(nodes, op, {"derain/output", "bg", "syn"}) for op in by_op))
    for name in sorted(behind_losses):
        n = nodes[name]
        if n.op == "Reshape":
            shape = _const(nodes, _op_name(n.input[1]))
            if shape is not None and shape.ndim == 1 and shape.size and shape[0] > 0:
                batch = int(shape[0])
    lr_name = _op_name(adam[0].input[5])
    lr = _const(nodes, f"{lr_name}/learning_rate") if lr_name.startswith("ExponentialDecay") else _const(nodes, lr_name)
    decay = _const(nodes, f"{lr_name}/Cast_1/x") if lr_name.startswith("ExponentialDecay") else None
    return GraphLayout(
        tasks=tuple(order),
        losses={t: op + ":0" for op, t in by_op.items()},
        weights=weights,
        objective=objective + ":0",
        gradients={v: g if ":" in g else g + ":0" for v, g in gradients.items()},
        batch_size=batch,
        learning_rate=float(lr) if lr is not None else float("nan"),
        decay_steps=int(decay) if decay is not None else 0,
        beta_1=float(_const(nodes, _op_name(adam[0].input[6]))),
        beta_2=float(_const(nodes, _op_name(adam[0].input[7]))),
        epsilon=float(_const(nodes, _op_name(adam[0].input[8]))),
    )


def _inference_graph_def(graph_def):
    """The forward pass of the training graph with its batch norms reading moving statistics.

    Only the ops ``derain/output`` needs; variables and their ``read`` ops are left out (they
    are mapped onto the training import's, so both share one set of weights).
    """
    graph_def = tf.compat.v1.GraphDef.FromString(graph_def.SerializeToString())
    for node in graph_def.node:
        if node.op in _BN_OPS:
            scope = node.name.rsplit("/", 1)[0]
            node.attr["is_training"].b = False
            node.input[3] = f"{scope}/moving_mean/read"
            node.input[4] = f"{scope}/moving_variance/read"
    nodes = {n.name: n for n in graph_def.node}
    needed, todo = set(), ["derain/output"]
    while todo:  # every op derain/output depends on, control inputs included
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo += [_op_name(i) for i in nodes[name].input]
    variables = {n for n in needed if nodes[n].op in ("VariableV2", "VarHandleOp")}
    reads = {n for n in needed if nodes[n].op == "Identity" and _op_name(nodes[n].input[0]) in variables}
    drop = variables | reads | {"syn"}
    kept = tf.compat.v1.GraphDef()
    kept.versions.CopyFrom(graph_def.versions)
    kept.library.CopyFrom(graph_def.library)
    kept.node.extend(n for n in graph_def.node if n.name in needed and n.name not in drop)
    return kept, sorted(reads)


# ---------------------------------------------------------------------------------------------
# running it


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
        syn = next(n for n in meta_graph.graph_def.node if n.name == "syn")
        self.train_shape = tuple(d.size for d in syn.attr["shape"].shape.dim)
        self.graph = tf.Graph()
        with self.graph.as_default():
            self._rainy = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], "rainy")
            self._clean = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], "clean")
            self._infer_in = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], "infer_rainy")
            try:
                tf.compat.v1.train.import_meta_graph(
                    meta_graph, input_map={"syn:0": self._rainy, "bg:0": self._clean},
                    clear_devices=True)
            except (ValueError, tf.errors.OpError) as err:
                raise CheckpointError(f"{self.meta_path}: cannot import the graph ({err})") from None
            g = self.graph
            self._variables = {v.op.name: v for v in tf.compat.v1.global_variables()}
            self.trainable = [v.op.name for v in tf.compat.v1.trainable_variables()]
            self.moving = sorted(n for n in self._variables if _MOVING.search(n))
            self._train_op = g.get_collection("train_op")[0]
            self._output = g.get_tensor_by_name("derain/output:0")
            self._losses = {t: g.get_tensor_by_name(n) for t, n in self.layout.losses.items()}
            self._weights = {
                t: (tf.constant(w, tf.float32) if isinstance(w, float) else g.get_tensor_by_name(w))
                for t, w in self.layout.weights.items()
            }
            self._objective = g.get_tensor_by_name(self.layout.objective)
            self._gradients = {v: g.get_tensor_by_name(n) for v, n in self.layout.gradients.items()}
            self._psnr = tf.reduce_mean(tf.image.psnr(self._output, self._clean, max_val=255.0))
            # Not in the released graph; added so a benchmark can ask it for the same logs the
            # port computes every step (menet_tf.bench.speed times both doing the same work).
            self._ssim = tf.reduce_mean(tf.image.ssim(self._output, self._clean, max_val=255.0))
            self._batch_stats = {}
            for op in g.get_operations():
                if op.type in _BN_OPS and op.name.startswith("derain/"):
                    scope = op.name.rsplit("/", 1)[0]
                    self._batch_stats[scope] = (op.outputs[1], op.outputs[2])
            inference_def, reads = _inference_graph_def(meta_graph.graph_def)
            input_map = {f"{r}:0": g.get_tensor_by_name(f"{r}:0") for r in reads}
            input_map["syn:0"] = self._infer_in
            (self._infer_out,) = tf.import_graph_def(
                inference_def, input_map=input_map, return_elements=["derain/output:0"],
                name="inference")
            self._saver = tf.compat.v1.train.Saver(
                var_list=self._variables, sharded=False, write_version=tf.compat.v1.train.SaverDef.V2)
            self._init = tf.compat.v1.global_variables_initializer()
        self.graph.finalize()
        self.session = tf.compat.v1.Session(graph=self.graph)
        self.session.run(self._init)

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
        if not tf1.has_data(prefix):
            raise CheckpointError(
                f"{prefix}: no .data file beside the index (the trained weights ship in the"
                " authors' repository, github SumiHui/MENET)")
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
            if _SLOT.search(name) or name == "global_step":
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
        self.assign(values)
        self.reset_optimizer()
        if calibration is None:
            calibration = synthetic_batch(4, 64, seed=seed + 1)[0]
        stats = self.session.run(self._batch_stats, {self._rainy: calibration})
        values = {}
        for scope, (mean, variance) in stats.items():
            values[f"{scope}/moving_mean"] = mean + 0.1 * np.sqrt(variance) * rng.standard_normal(mean.shape)
            values[f"{scope}/moving_variance"] = variance * rng.uniform(0.7, 1.3, variance.shape)
        self.assign(values)

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
