"""The authors' released TF1 training graphs, found and read as data (run by ``session``).

The authors (github SumiHui/MENET) released, for every model, the TF1 training graph
(``model.final-100.meta``: network, task losses, task weights, Adam) and the checkpoint. They
are what ``menet-tf compare-authors`` and ``menet-tf bench --authors`` measure the port
against; nothing of the authors' source code is needed or copied.

What reading them needs (TensorFlow 2.21):

- ``import_meta_graph`` refuses them until the stale ``_output_shapes`` attributes are dropped.
- Losses, task weights, the objective and each variable's gradient are found by walking the
  graph (the ``losses`` collection, the ``ApplyAdam`` ops and the gradient scope they read), not
  by trusting node names, which differ between models.
- Inference needs the forward pass with every ``FusedBatchNorm`` switched to
  ``is_training=False`` and fed the moving statistics (``inference_graph_def``).
"""
import dataclasses
import glob
import os
import re

import tensorflow as tf

from menet_tf.authors.checkpoint import WEIGHTS_ELSEWHERE, has_data
from menet_tf.errors import CheckpointError, MenetError

BN_OPS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
_ADAM_OPS = ("ApplyAdam", "ResourceApplyAdam")
_INPUTS = frozenset({"derain/output", "bg", "syn"})  # where the walk behind a loss stops
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
        model = ReleasedModel(name, meta, prefix, has_data(prefix), release)
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
    return (f"{model.checkpoint_prefix}: no .data file ({WEIGHTS_ELSEWHERE}); using a seeded"
            " initialisation")


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


def input_shape(meta_graph, name="syn"):
    """The fixed shape of one of the graph's placeholders (``syn``: [20, 224, 224, 3])."""
    node = next(n for n in meta_graph.graph_def.node if n.name == name)
    return tuple(d.size for d in node.attr["shape"].shape.dim)


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
    names = _ancestors(nodes, loss_op, _INPUTS)
    ops = {nodes[n].op for n in names}
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


def _const(nodes, name):
    node = nodes.get(name)
    if node is None or node.op != "Const":
        return None
    return tf.make_ndarray(node.attr["value"].tensor)


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


def analyse(meta_graph, where="graph"):
    """Walk a MetaGraphDef and return its GraphLayout."""
    nodes = {n.name: n for n in meta_graph.graph_def.node}
    adam = [n for n in meta_graph.graph_def.node if n.op in _ADAM_OPS]
    if not adam:
        raise CheckpointError(f"{where}: no Adam update in this graph (not a training graph)")
    gradients = {_op_name(n.input[0]): n.input[9] for n in adam}
    objective = _objective(meta_graph.graph_def, nodes, gradients, where)
    tasks = _task_losses(meta_graph, nodes, where)
    order, weights = _objective_terms(nodes, objective, tasks, where)
    return GraphLayout(
        tasks=tuple(order),
        losses={t: op + ":0" for op, t in tasks.items()},
        weights=weights,
        objective=objective + ":0",
        gradients={v: g if ":" in g else g + ":0" for v, g in gradients.items()},
        batch_size=_fixed_batch(nodes, tasks),
        **_adam_settings(nodes, adam[0]),
    )


def _objective(graph_def, nodes, gradients, where):
    """The op the Adam step differentiates: the one whose ``<op>_grad`` the gradient scope's
    seed (``<scope>/Fill``) feeds."""
    scope = gradients[next(iter(gradients))].split("/")[0]
    seed = f"{scope}/Fill"
    for n in graph_def.node:
        if seed in n.input and n.name.startswith(scope + "/"):
            m = re.match(rf"^{re.escape(scope)}/(.+?)_grad/", n.name)
            if m and m.group(1) in nodes:
                return m.group(1)
    raise CheckpointError(f"{where}: cannot find the objective the Adam step differentiates")


def _task_losses(meta_graph, nodes, where):
    """{loss op: task} of the graph's ``losses`` collection."""
    by_op = {}
    for tensor in meta_graph.collection_def["losses"].node_list.value:
        op = _op_name(tensor)
        task = _classify_loss(nodes, op)
        if task in by_op.values():
            raise CheckpointError(f"{where}: two losses look like the {task} task")
        by_op[op] = task
    return by_op


def _objective_terms(nodes, objective, by_op, where):
    """The tasks in the order of the objective's terms, and each task's weight: a tensor name
    (``weight * loss``) or 1.0 (a bare loss)."""
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
    return order, weights


def _fixed_batch(nodes, by_op):
    """The batch a loss reshapes to as a constant (the texture Gram), or 0 for any batch."""
    batch = 0
    behind_losses = set().union(*(_ancestors(nodes, op, _INPUTS) for op in by_op))
    for name in sorted(behind_losses):
        n = nodes[name]
        if n.op == "Reshape":
            shape = _const(nodes, _op_name(n.input[1]))
            if shape is not None and shape.ndim == 1 and shape.size and shape[0] > 0:
                batch = int(shape[0])
    return batch


def _adam_settings(nodes, adam):
    """Learning rate (and decay steps when it decays), betas and epsilon of an Adam op."""
    lr_name = _op_name(adam.input[5])
    decays = lr_name.startswith("ExponentialDecay")
    lr = _const(nodes, f"{lr_name}/learning_rate") if decays else _const(nodes, lr_name)
    decay = _const(nodes, f"{lr_name}/Cast_1/x") if decays else None
    return dict(
        learning_rate=float(lr) if lr is not None else float("nan"),
        decay_steps=int(decay) if decay is not None else 0,
        beta_1=float(_const(nodes, _op_name(adam.input[6]))),
        beta_2=float(_const(nodes, _op_name(adam.input[7]))),
        epsilon=float(_const(nodes, _op_name(adam.input[8]))),
    )


def inference_graph_def(graph_def):
    """The forward pass of the training graph with its batch norms reading moving statistics,
    and the names of the variables' ``read`` ops it needs.

    Only the ops ``derain/output`` needs; variables and their ``read`` ops are left out, so the
    caller maps them onto the training import's and both share one set of weights.
    """
    graph_def = tf.compat.v1.GraphDef.FromString(graph_def.SerializeToString())
    for node in graph_def.node:
        if node.op in BN_OPS:
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
