"""tf.distribute keeps the single-device semantics: MirroredStrategy on two logical CPU devices
and MultiWorkerMirroredStrategy with two worker processes on localhost, against one device on
the same global batch (tiny MENETs, see distributed_run.py).

What is exactly comparable: with --sync-bn every batch norm uses the global batch's moments, so
losses, GB/LB weights, the global gradient and the variables after 3 steps must equal the
single-device run. With per-replica batch norm (the default) they are equal only when every
replica's batch has the statistics of the global batch: the "repeated" case feeds (a, b, a, b),
so each replica sees (a, b); only the moving variance differs there (Bessel's n/(n-1) uses the
replica's n). With distinct shards, per-replica batch norm really differs (checked too).
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from menet_tf.train.distribute import is_chief, make_strategy, read_tf_config, worker_out_dir
from menet_tf.errors import ConfigError

HELPER = Path(__file__).with_name("distributed_run.py")
REPO = HELPER.parents[2]
TIMEOUT = 900  # seconds per process; a quiet machine needs ~30 s


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _start(*args, **env):
    return subprocess.Popen([sys.executable, str(HELPER), *map(str, args)], env=_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(processes):
    try:
        outputs = [p.communicate(timeout=TIMEOUT)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    for p, out in zip(processes, outputs):
        if p.returncode:
            pytest.fail(f"{' '.join(p.args[1:])} failed:\n{out[-3000:]}")


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distribute")
    init = folder / "init.npz"
    _wait([_start("default", folder / "single.npz", init)])  # also writes the initial weights
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    multi_cases = "gb_sync,lb_sync"
    processes = [_start("mirrored", folder / "mirrored.npz", init, "--logical-cpus", 2)]
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(_start("multiworker", folder / f"worker{index}.npz", init,
                                "--cases", multi_cases, TF_CONFIG=json.dumps(tf_config)))
    _wait(processes)
    return {name: dict(np.load(folder / f"{name}.npz"))
            for name in ("single", "mirrored", "worker0", "worker1")}


def _cases(run):
    return sorted({k.split("/")[0] for k in run if k.endswith("/names")})


def _assert_same_training(single, other, case, skip_moving_variance=False):
    """Per-step logs, the first step's global gradient, and every variable after the steps."""
    logs = sorted(k for k in single if k.startswith(f"{case}/log/"))
    assert logs and set(logs) == {k for k in other if k.startswith(f"{case}/log/")}
    for key in logs:
        if "/log/weight_" in key:
            np.testing.assert_allclose(other[key], single[key], rtol=0, atol=1e-6, err_msg=key)
        else:
            np.testing.assert_allclose(other[key], single[key], rtol=2e-5, atol=1e-6, err_msg=key)
    names = single[f"{case}/names"]
    gradients = sorted((k for k in single if k.startswith(f"{case}/gradient/")),
                       key=lambda k: int(k.rsplit("/", 1)[1]))
    assert gradients
    for key in gradients:
        scale = np.abs(single[key]).max()
        np.testing.assert_allclose(other[key], single[key], rtol=0, atol=1e-4 * scale + 1e-7, err_msg=key)
    for i, name in enumerate(names):
        if skip_moving_variance and name.endswith("moving_variance"):
            continue
        key = f"{case}/final/{i}"
        start = single[f"{case}/init/{i}"] if f"{case}/init/{i}" in single else None
        moved = np.abs(single[key] - start).max() if start is not None else 1.0
        # Within 1e-3 of how far the variable moved in the 3 steps (float noise through BN).
        np.testing.assert_allclose(other[key], single[key], rtol=0, atol=1e-3 * moved + 1e-7,
                                   err_msg=f"{case}: {name}")
    assert float(other[f"{case}/replica_spread"]) == 0.0, "replicas' copies of a variable differ"
    # An Inf in one replica's share: the step is skipped on every replica and counted once.
    assert list(other[f"{case}/inf_step/skipped"]) == [1.0]
    assert int(other[f"{case}/inf_step/iterations"]) == 0
    assert float(other[f"{case}/inf_step/moved"]) == 0.0


@pytest.mark.slow  # multi-process distribution (the runs fixture)
def test_two_replicas(runs):
    assert int(runs["single"]["replicas"]) == 1
    assert int(runs["mirrored"]["replicas"]) == 2
    assert int(runs["worker0"]["replicas"]) == int(runs["worker1"]["replicas"]) == 2


@pytest.mark.slow  # multi-process distribution (the runs fixture)
@pytest.mark.parametrize("case", ["gb_sync", "lb_sync"])
def test_mirrored_with_sync_bn_equals_one_device(runs, case):
    _assert_same_training(runs["single"], runs["mirrored"], case)


@pytest.mark.slow  # multi-process distribution (the runs fixture)
def test_mirrored_with_per_replica_bn_equals_one_device_when_replicas_see_alike_batches(runs):
    _assert_same_training(runs["single"], runs["mirrored"], "replica_bn_repeated", skip_moving_variance=True)


@pytest.mark.slow  # multi-process distribution (the runs fixture)
def test_per_replica_bn_differs_from_one_device_on_distinct_shards(runs):
    """The default BN is per replica (and the data of the sync tests do tell them apart); the
    moving statistics still agree on every replica (mean of the replicas' updates)."""
    single, mirrored = runs["single"], runs["mirrored"]
    case = "replica_bn_distinct"
    gradients = [k for k in single if k.startswith(f"{case}/gradient/")]
    off = max(np.abs(mirrored[k] - single[k]).max() / np.abs(single[k]).max() for k in gradients)
    assert off > 0.1, "per-replica batch norm gave the single-device gradient on distinct shards"
    assert float(mirrored[f"{case}/replica_spread"]) == 0.0


@pytest.mark.slow  # multi-process distribution (the runs fixture)
@pytest.mark.parametrize("case", ["gb_sync", "lb_sync"])
def test_two_workers_equal_one_device(runs, case):
    for worker in ("worker0", "worker1"):
        _assert_same_training(runs["single"], runs[worker], case)


def test_strategy_names_and_tf_config_errors(monkeypatch):
    with pytest.raises(ConfigError, match="unknown strategy 'gpu'"):
        make_strategy("gpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="needs the TF_CONFIG environment variable"):
        make_strategy("multiworker")
    bad = {
        "{": "not valid JSON",
        json.dumps({"task": {"type": "worker", "index": 0}}): 'no "cluster"',
        json.dumps({"cluster": {"worker": ["localhost"]}, "task": {"type": "worker"}}): "is not \"host:port\"",
        json.dumps({"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker"}}): r"\['ps'\]",
        json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}): "index 2 is not in 0..1",
        json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "evaluator"}}): "must name this process's job",
    }
    for raw, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            read_tf_config({"TF_CONFIG": raw})
    good = {"cluster": {"worker": ["127.0.0.1:1234", "127.0.0.1:1235"]}, "task": {"type": "worker", "index": 1}}
    assert read_tf_config({"TF_CONFIG": json.dumps(good)}) == good


def test_default_strategy_is_the_chief(tmp_path):
    strategy = make_strategy("default")
    assert strategy.num_replicas_in_sync == 1 and make_strategy(strategy) is strategy
    assert is_chief(strategy) and is_chief(None)
    assert worker_out_dir(str(tmp_path), strategy) == str(tmp_path)
