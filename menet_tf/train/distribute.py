"""Data-parallel training through tf.distribute: the strategies ``--strategy`` names.

    strategy = make_strategy("mirrored")      # before anything else touches TensorFlow
    with strategy.scope():
        model = build_model(config)           # model AND optimizer inside the scope
    model.fit(dataset_batched_with_the_global_batch_size, ...)

What stays as on one device (``MultiTaskMENET.train_step``): task losses are means over the
GLOBAL batch (each replica's mean, averaged over the replicas: equal shards), LB weights come from
those global losses, GB norms from each task's layer5 gradient summed over all replicas, and the
gradient applied is the global batch's (each replica contributes 1/replicas of its own, the
optimizer sums). What is per replica: batch-norm batch statistics (as in any data-parallel run),
unless the model was built with ``sync_batch_norm`` (``--sync-bn``); the moving statistics are
the mean of every replica's update.
"""
import json
import os

from menet_tf.errors import ConfigError

STRATEGIES = ("default", "mirrored", "multiworker")
TF_CONFIG_HELP = (
    'TF_CONFIG=\'{"cluster": {"worker": ["host1:port", "host2:port"]},'
    ' "task": {"type": "worker", "index": 0}}\' on the first machine, index 1 on the second, ...'
)


def make_strategy(name="default"):
    """The tf.distribute strategy called ``name`` (a Strategy object is returned as it is).

    - ``"default"``: one device, what runs without a strategy;
    - ``"mirrored"``: every GPU of this machine (every logical CPU device if there is no GPU);
    - ``"multiworker"``: every worker listed in ``TF_CONFIG`` (each runs the same command);
      create it before any other TensorFlow work in the process (TF's rule for collectives).
    """
    import tensorflow as tf

    if isinstance(name, tf.distribute.Strategy):
        return name
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    read_tf_config()
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        raise ConfigError(f"cannot start the multi-worker strategy from TF_CONFIG: {err}") from None


def read_tf_config(environ=None):
    """TF_CONFIG checked for what MultiWorkerMirroredStrategy needs; ConfigError naming the problem.

    Checked here because TensorFlow silently falls back to a single worker on a missing
    TF_CONFIG and fails with deep tracebacks (or waits forever) on a malformed one.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError(f"--strategy multiworker needs the TF_CONFIG environment variable: {TF_CONFIG_HELP}")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({err}): {TF_CONFIG_HELP}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise ConfigError(f"TF_CONFIG has no \"cluster\" mapping: {TF_CONFIG_HELP}")
    unsupported = sorted(set(cluster) - {"worker", "chief"})
    if unsupported:
        raise ConfigError(f"TF_CONFIG cluster has {unsupported}: multiworker training uses only"
                          " \"worker\" (and optionally one \"chief\") jobs")
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise ConfigError(f"TF_CONFIG cluster.{job} must be a non-empty list of \"host:port\"")
        for address in addresses:
            host, _, port = str(address).rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(f"TF_CONFIG cluster.{job}: {address!r} is not \"host:port\"")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise ConfigError(f"TF_CONFIG task must name this process's job, one of {sorted(cluster)}:"
                          f" got {task!r}")
    index = task.get("index", 0)
    if not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise ConfigError(f"TF_CONFIG task index {index!r} is not in 0..{len(cluster[task['type']]) - 1}")
    return config


def _task(strategy):
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    if resolver is None or not getattr(resolver, "task_type", None):
        return None, None
    return resolver.task_type, resolver.task_id


def is_chief(strategy=None):
    """Whether this process writes the run's files: always, except on the non-chief workers of
    a multi-worker cluster."""
    task_type, task_id = _task(strategy)
    jobs = strategy.cluster_resolver.cluster_spec().jobs if task_type else ()
    return _is_chief_task(task_type, task_id, jobs)


def is_chief_process(strategy=None):
    """``is_chief`` before the strategy is built: for the name "multiworker", the task is read
    off TF_CONFIG as the strategy will read it, so that only the chief cleans the shared folder."""
    if not isinstance(strategy, str):
        return is_chief(strategy)
    if strategy != "multiworker":
        return True
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task") or {}
    return _is_chief_task(task.get("type"), int(task.get("index", 0)), config.get("cluster") or {})


def _is_chief_task(task_type, task_id, jobs):
    """The chief is the "chief" task, else worker 0; a process outside any cluster is its own."""
    if task_type is None or task_type == "chief":
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in jobs


def worker_out_dir(out, strategy=None):
    """Where this process writes: ``out`` on the chief; a private ``out/.worker-<index>`` on the
    other workers, which must still save (saving is collective) but must not overwrite the
    chief's files. Delete it after the run."""
    if is_chief(strategy):
        return out
    task_type, task_id = _task(strategy)
    return os.path.join(out, f".{task_type}-{task_id}")
