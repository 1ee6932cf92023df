"""The device a GPU check runs on (``make gpu-check``): the GPUs TensorFlow sees, their memory,
the CUDA build, and the GPU-only tests (``pytest -m gpu``) run in a subprocess with their counts.
"""
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

from menet_tf.tf_logging import captured_stderr


def find_gpus():
    """(tensorflow module, [GPU devices], what TensorFlow printed meanwhile)."""
    printed = []
    with captured_stderr(printed):
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    return tf, gpus, printed[0]


def no_gpu_line(tf):
    build = tf.sysconfig.get_build_info()
    if build.get("is_cuda_build"):
        hint = ("a CUDA build; with an NVIDIA GPU and driver, install the CUDA libraries:"
                " pip install -e '.[gpu]'")
    else:
        hint = "not a CUDA build: pip install -e '.[gpu]' on a machine with an NVIDIA GPU"
    return (f"gpu-check: no GPU visible to TensorFlow {tf.__version__} ({hint}); nothing to check,"
            " no file written")


def nvidia_smi():
    """Name, total memory (MB) and driver of each GPU from nvidia-smi, or None without it."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
             "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    rows = []
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            rows.append({"name": parts[0], "memory_total_mb": _number(parts[1]),
                         "driver": parts[2]})
    return rows or None


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


def device_record(tf, gpus):
    """The device section: GPU(s), CUDA/cuDNN of the build, versions, the machine around it."""
    from menet_tf.bench.speed import machine_info
    from menet_tf.machine import versions

    build = dict(tf.sysconfig.get_build_info())
    details = []
    for gpu in gpus:
        try:
            d = tf.config.experimental.get_device_details(gpu)
        except Exception:  # noqa: BLE001 - details are informative only
            d = {}
        cc = d.get("compute_capability")
        details.append({"tf_name": gpu.name, "name": d.get("device_name", gpu.name),
                        "compute_capability": ".".join(map(str, cc)) if cc else None})
    smi = nvidia_smi()
    if smi:
        for detail, row in zip(details, smi):
            detail.update(memory_total_mb=row["memory_total_mb"], driver=row["driver"])
    return {
        "device": "GPU" if gpus else "CPU",
        "name": details[0]["name"] if details else cpu_name(),
        "gpus": details,
        "versions": {
            **versions(),  # python, menet-tf, tensorflow, keras, numpy: every record's keys
            "cuda_build": build.get("cuda_version"),
            "cudnn_build": build.get("cudnn_version"),
            "is_cuda_build": build.get("is_cuda_build"),
            "cuda_compute_capabilities": build.get("cuda_compute_capabilities"),
            "nvidia_driver": smi[0]["driver"] if smi else None,
        },
        "machine": machine_info(),
    }


def cpu_name():
    from menet_tf.machine import cpu_info

    return f"CPU ({cpu_info()['model']})"


def gpu_peak_mb():
    """Peak GPU memory (MB) of this process's allocator since the last reset, None without."""
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    return round(tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, 1)


def reset_gpu_peak():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        tf.config.experimental.reset_memory_stats("GPU:0")


def gpu_tests(tests, timeout, on_gpu, repo):
    """``pytest -m gpu TESTS`` in a subprocess run in ``repo`` (the checkout); counts from its
    JUnit XML report."""
    if not os.path.exists(tests):
        raise FileNotFoundError(f"{tests}: no tests here (the check runs from a checkout of the"
                                " repository)")
    import importlib.util

    if importlib.util.find_spec("pytest") is None:
        raise RuntimeError("pytest is not installed: pip install -e '.[gpu]'")
    with tempfile.TemporaryDirectory(prefix="menet-tf-gpu-tests-") as work:
        report = os.path.join(work, "report.xml")
        command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                   f"--junitxml={report}", tests]
        try:
            done = subprocess.run(command, cwd=repo, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"pytest -m gpu took more than {timeout:.0f} s (the time"
                               " budget)") from None
        counts = junit_counts(report) if os.path.exists(report) else None
    tail = (done.stdout or done.stderr).strip().splitlines()[-1:] or [""]
    out = {"command": " ".join(["python", *command[1:-2], os.path.relpath(tests, repo)]),
           "returncode": done.returncode, "summary": tail[0]}
    if counts is None:
        out["failures"] = [f"pytest wrote no report (exit {done.returncode}): {tail[0]}"]
        return out
    out.update(counts)
    failures = [f"{name}: {message}" for name, message in counts.pop("failed_tests")]
    out["failed_tests"] = failures
    if failures:
        out["failures"] = failures
    elif done.returncode not in (0, 5) or (on_gpu and counts["passed"] == 0):
        out["failures"] = [f"pytest exit {done.returncode}, {counts['passed']} passed: {tail[0]}"]
    return out


def junit_counts(path):
    """passed / failed / errors / skipped and [(test, one-line message)] of a JUnit XML file."""
    root = ET.parse(path).getroot()
    cases = root.iter("testcase")
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "failed_tests": []}
    for case in cases:
        name = "::".join(part for part in (case.get("classname"), case.get("name")) if part)
        outcome = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        if outcome is None:
            counts["passed"] += 1
        elif outcome.tag == "skipped":
            counts["skipped"] += 1
        else:
            counts["failed" if outcome.tag == "failure" else "errors"] += 1
            counts["failed_tests"].append((name, _junit_message(outcome)))
    return counts


def _junit_message(outcome):
    """A failure's message in one line, with the first ``E`` line of its report when the
    message alone says little ("collection failure")."""
    message = " ".join((outcome.get("message") or "").split())
    detail = next((" ".join(line[1:].split()) for line in (outcome.text or "").splitlines()
                   if line.startswith("E ")), "")
    if detail and detail not in message:
        message = f"{message}: {detail}" if message else detail
    return message[:300]
