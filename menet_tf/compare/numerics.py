"""The numbers of ``menet-tf compare-authors``: the port's side of each quantity, and each check
with its tolerance and verdict.

The port starts from the values the authors' graph holds, handed over as a TF1 checkpoint read
by ``menet_tf.authors.checkpoint.load_checkpoint`` (one name mapping only). Gradients are judged
against the port run in float64 (the arbiter): float32 noise leaves both float32 sides near it,
other math leaves one far from it.
"""
import numpy as np
import tensorflow as tf

from menet_tf import config as config_lib
from menet_tf.authors.checkpoint import MOVING_STATISTIC, load_checkpoint, variable_map
from menet_tf.errors import MenetError
from menet_tf.infer.derainer import Derainer
from menet_tf.model.metrics import image_metrics
from menet_tf.model.multitask import MultiTaskMENET, build_model

# Tolerances, each the float32 noise measured on the three fixtures and the deep GB model with
# a margin (README, Faithfulness); a defect (a wrong weight, momentum, epsilon) is far outside.
TOLERANCES = {
    "inference": 1e-2,  # max |difference| of the 0..255 outputs
    "loss": 2e-4,  # relative, each task loss and the objective
    "weight": 1e-4,  # absolute, each task weight (they lie in 0..1)
    "psnr": 1e-3,  # dB
    # Gradients: per variable max |difference| / its largest entry; the MEDIAN over variables
    # of the port's and of the authors' distance from the float64 arbiter (without arbiter:
    # of port against authors). Measured: 0.13% to 0.52%. The worst variable is reported, not
    # judged: it is a batch norm's beta whose gradient cancels to float noise (up to 4.2%).
    "gradient": 1e-2,
    # Variables after N Adam steps: of all weight elements, those off by more than 2e-4 +
    # 1e-4 |ref| may be at most this share (an Adam step follows the gradient's sign, which
    # flips where the gradient is float noise around zero, e.g. in half the entries of a beta
    # whose gradient cancels), and none by more than 2 lr per step.
    "step_share": 0.1,
    # BN moving statistics after N steps: per statistic, max |difference| / its largest entry
    # (the batches' statistics move with the weights' few flipped Adam steps).
    "moving": 1e-3,
}


# ---------------------------------------------------------------------------------------------
# the port's side


def port_config(name, graph):
    """The port's ExperimentConfig for a released model, with the graph's optimizer settings."""
    if name in config_lib.RELEASED:
        config = config_lib.released_config(name)
    else:
        raise MenetError(f"{name}: not a released model the port knows ({sorted(config_lib.RELEASED)})")
    layout = graph.layout
    opt = config.optimizer
    opt.learning_rate = layout.learning_rate
    opt.beta_1, opt.beta_2, opt.epsilon = layout.beta_1, layout.beta_2, layout.epsilon
    if layout.decay_steps:
        opt.decay_steps = layout.decay_steps
    config.train.jit_compile = False
    return config


def build_port(config, prefix, dtype=None):
    """The port's compiled model with the values of the TF1 checkpoint ``prefix``."""
    if dtype is None:
        model = build_model(config)
    else:
        model = MultiTaskMENET(
            depth=config.model.depth, attention=config.model.attention, tasks=config.loss.tasks,
            weighting=config.loss.weighting, task_weights=config.loss.task_weights,
            texture_form=config.loss.texture_form, dtype=dtype,
        )
        model.ensure_built()
    load_checkpoint(model, prefix)
    return model


def port_variables(model):
    return {n: v.numpy() for n, v in variable_map(model).items()}


def _keep_moving(model):
    """Snapshot of the BN moving statistics, to undo the update of a training-mode pass."""
    moving = {n: v for n, v in variable_map(model).items() if MOVING_STATISTIC.search(n)}
    saved = {n: v.numpy() for n, v in moving.items()}
    return lambda: [moving[n].assign(saved[n]) for n in moving]


def port_step_logs(model, rainy, clean):
    """{loss, <task>, weight_<task>, psnr} of a training-mode pass, without training."""
    restore = _keep_moving(model)
    _, (c, derained, losses, weights) = model.compute_gradients((tf.constant(rainy), tf.constant(clean)))
    restore()
    objective = tf.add_n([w * l for w, l in zip(weights, losses)])
    out = {"loss": float(objective), "psnr": float(image_metrics(c, derained)[0])}
    for task, loss, weight in zip(model.task_names, losses, weights):
        out[task] = float(loss)
        out[f"weight_{task}"] = float(weight)
    return out


def port_gradients(model, rainy, clean):
    """{TF1 name: gradient} of the port's objective (float32, its own training step's code)."""
    names = {id(v): n for n, v in variable_map(model).items()}
    restore = _keep_moving(model)
    grads, _ = model.compute_gradients((tf.constant(rainy), tf.constant(clean)))
    restore()
    return {names[id(v)]: g.numpy() for v, g in zip(model.trainable_variables, grads)}


def float64_gradients(model, rainy, clean, weights=None):
    """The arbiter: the same objective's gradients computed entirely in float64.

    ``model`` is a float64 MultiTaskMENET; the step is spelled out here because the training
    step computes its losses in float32. ``weights`` (task order) holds the task weights at
    given values, normally those of the float32 step: in float32, gradient balance gives the
    texture task a weight of exactly 0 (its gradient is ~1e12 times the others'), in float64
    about 1e-12, which times a texture loss of ~1e12 is a different objective altogether. The
    weights are constants of the step on both sides, so holding them compares back-propagation
    only, which is what float32 noise affects."""
    names = {id(v): n for n, v in variable_map(model).items()}
    x, y = tf.constant(rainy, tf.float64), tf.constant(clean, tf.float64)
    # Persistent (all float64 activations kept for several gradients) only when the weights
    # must be computed from per-task gradients; the deep model's batch needs GBs in float64.
    with tf.GradientTape(persistent=weights is None) as tape:
        out = tf.cast(model(x, training=True), tf.float64)
        losses = [task(y, out) for task in model.task_losses]
    if weights is None:
        norms = None
        if model.weighting.needs_gradient_norms:
            norms = [tf.norm(tape.gradient(loss, model.shared_kernel)) for loss in losses]
        weights = model.weighting.weights(losses, norms)
    weights = [tf.stop_gradient(tf.cast(w, tf.float64)) for w in weights]
    # d(sum_i w_i L_i) with the w_i held constant: the losses' gradients weighted by w_i.
    grads = tape.gradient(losses, model.trainable_variables, output_gradients=weights)
    del tape
    return {names[id(v)]: g.numpy() for v, g in zip(model.trainable_variables, grads)}


def port_predictor(model):
    """The port's inference: the Derainer, the one inference path (no XLA, like the graph)."""
    return Derainer(model, jit_compile=False).predict


# ---------------------------------------------------------------------------------------------
# checks


def _check(value, tolerance, **extra):
    ok = bool(np.isfinite(value) and value <= tolerance)
    return {"value": float(value), "tolerance": float(tolerance), "ok": ok, **extra}


def _relative(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


def compare_inference(port, authors):
    """Max |difference| of the two sides' 0..255 outputs."""
    return _check(float(np.abs(port - authors).max()), TOLERANCES["inference"])


def compare_logs(port, authors):
    """Worst relative loss difference, worst absolute weight difference, PSNR difference."""
    loss_keys = [k for k in authors if k not in ("psnr",) and not k.startswith("weight_")]
    weight_keys = [k for k in authors if k.startswith("weight_")]
    missing = sorted(set(authors) - set(port))
    if missing:
        raise MenetError(f"the port does not log {missing} (tasks differ from the authors' graph)")
    per_loss = {k: _relative(port[k], authors[k]) for k in loss_keys}
    per_weight = {k: abs(port[k] - authors[k]) for k in weight_keys}
    return {
        "losses": _check(max(per_loss.values()), TOLERANCES["loss"], each=per_loss),
        "weights": _check(max(per_weight.values(), default=0.0), TOLERANCES["weight"], each=per_weight),
        "psnr": _check(abs(port["psnr"] - authors["psnr"]), TOLERANCES["psnr"]),
        "port": port,
        "authors": authors,
    }


def gradient_errors(grads, reference):
    """Per variable max |g - ref| / max |ref|; returns (median, worst, worst variable)."""
    errors = {}
    for name, ref in reference.items():
        scale = float(np.abs(ref).max()) or 1.0
        errors[name] = float(np.abs(grads[name] - ref).max() / scale)
    worst = max(errors, key=errors.get)
    return {"median": float(np.median(list(errors.values()))), "worst": errors[worst], "worst_variable": worst}


def compare_gradients(port, authors, arbiter=None):
    """Port against authors, and both against the float64 arbiter when there is one."""
    result = {"port_vs_authors": gradient_errors(port, authors)}
    if arbiter is None:
        result["arbiter"] = "unavailable"
        result.update(_check(result["port_vs_authors"]["median"], TOLERANCES["gradient"]))
        return result
    result["port_vs_float64"] = gradient_errors(port, arbiter)
    result["authors_vs_float64"] = gradient_errors(authors, arbiter)
    p, a = result["port_vs_float64"], result["authors_vs_float64"]
    if abs(p["median"] - a["median"]) <= 0.01 * max(p["median"], a["median"]):
        result["closer_to_float64"] = "equally close"  # same kernels, same order: same noise
    else:
        result["closer_to_float64"] = "port" if p["median"] < a["median"] else "authors"
    # Both float32 implementations must sit within float32 noise of the float64 port: a port
    # computing other math is near its own float64 version, but then the authors' graph is
    # far from it, for most variables.
    result.update(_check(max(p["median"], a["median"]), TOLERANCES["gradient"]))
    return result


def compare_variables(port, authors, steps, learning_rate):
    """Every weight and BN statistic after ``steps`` Adam steps on both sides."""
    worst_share, worst_jump, worst_moving = 0.0, 0.0, 0.0
    where, off_total, total = {}, 0, 0
    for name, ref in authors.items():
        value = port[name]
        diff = np.abs(value - ref)
        if MOVING_STATISTIC.search(name):
            rel = float(diff.max() / max(float(np.abs(ref).max()), 1e-12))
            if rel > worst_moving:
                worst_moving, where["moving"] = rel, name
            continue
        off = diff > 2e-4 + 1e-4 * np.abs(ref)
        off_total, total = off_total + int(off.sum()), total + off.size
        share = float(off.mean())
        if share > worst_share:
            worst_share, where["share"] = share, name
        if float(diff.max()) > worst_jump:
            worst_jump, where["jump"] = float(diff.max()), name
    jump_limit = 2 * learning_rate * steps + 1e-4
    return {
        "steps": steps,
        "weights": _check(off_total / max(total, 1), TOLERANCES["step_share"],
                          worst_variable=where.get("share"), worst_variable_share=worst_share,
                          max_abs_difference=worst_jump, max_abs_limit=jump_limit,
                          ok_jump=worst_jump <= jump_limit),
        "moving_statistics": _check(worst_moving, TOLERANCES["moving"],
                                    worst_variable=where.get("moving")),
    }
