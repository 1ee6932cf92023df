"""Task weighting: how the task losses L_i are combined into the objective L = sum_i w_i L_i.

A scheme is a small class with ``weights(losses, shared_gradient_norms)``; the training step
does not know which one it runs, so a new scheme is a new registered class, not an edit of
``train_step``. Weights are returned wrapped in ``tf.stop_gradient``: they are constants of the
step, as in the released graphs.
"""
import tensorflow as tf

from menet_tf.errors import ConfigError

WEIGHTINGS = {}


def register_weighting(name):
    """Class decorator: make a weighting scheme available under ``name`` in configurations."""

    def decorate(cls):
        cls.scheme = name
        WEIGHTINGS[name] = cls
        return cls

    return decorate


class TaskWeighting:
    """Base class. ``needs_gradient_norms`` asks the step for ||dL_i/dK5||_F of every task."""

    needs_gradient_norms = False

    def __init__(self, tasks, task_weights=None):
        self.tasks = tuple(tasks)

    def weights(self, losses, gradient_norms=None):
        """One float32 scalar weight per task, in task order."""
        raise NotImplementedError

    def __call__(self, losses, gradient_norms=None):
        return [tf.stop_gradient(tf.cast(w, tf.float32)) for w in self.weights(losses, gradient_norms)]


def _one_minus_share(values):
    """w_i = 1 - v_i / sum_j v_j (summed in task order, like the released graphs).

    A zero sum (all losses or gradients zero) gives w_i = 1 rather than NaN.
    """
    total = values[0]
    for v in values[1:]:
        total = total + v
    return [1.0 - tf.math.divide_no_nan(v, total) for v in values]


@register_weighting("fixed")
class FixedWeighting(TaskWeighting):
    """Constant weights, e.g. L_p + 1e-2 L_e (edge, fixed) or L_p + 1e-3 L_vgg (VGG, fixed)."""

    def __init__(self, tasks, task_weights=None):
        super().__init__(tasks)
        task_weights = dict(task_weights or {})
        unknown = set(task_weights) - set(self.tasks)
        if unknown:
            raise ConfigError(f"weights given for tasks the model does not have: {sorted(unknown)}")
        self.task_weights = [float(task_weights.get(t, 1.0)) for t in self.tasks]

    def weights(self, losses, gradient_norms=None):
        return [tf.constant(w, tf.float32) for w in self.task_weights]


class _Balance(TaskWeighting):
    def __init__(self, tasks, task_weights=None):
        super().__init__(tasks)
        if len(self.tasks) < 2:
            raise ConfigError(
                f"{self.scheme!r} weighting needs at least two tasks (it would give the single"
                f" task {self.tasks} a weight of 0); use 'fixed'"
            )
        if task_weights:
            raise ConfigError(f"{self.scheme!r} weighting sets its own weights; give no task_weights")


@register_weighting("gb")
class GradientBalance(_Balance):
    """GB: w_i = 1 - g_i / sum_j g_j, g_i = ||dL_i / dK5||_F on the layer5 kernel K5."""

    needs_gradient_norms = True

    def weights(self, losses, gradient_norms=None):
        return _one_minus_share(gradient_norms)


@register_weighting("lb")
class LossBalance(_Balance):
    """LB: w_i = 1 - L_i / sum_j L_j."""

    def weights(self, losses, gradient_norms=None):
        return _one_minus_share(losses)


def make_weighting(scheme, tasks, task_weights=None):
    if scheme not in WEIGHTINGS:
        raise ConfigError(f"unknown weighting {scheme!r}; choose one of {sorted(WEIGHTINGS)}")
    return WEIGHTINGS[scheme](tasks, task_weights)
