"""What this process runs on, for the records results carry (run.json, summary.json, bench)."""
import os
import platform


def cpu_info():
    """CPU model and the instruction-set flags that matter for TF on CPUs (from /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    wanted = sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma"))
    return {
        "model": model,
        "logical_cpus": os.cpu_count(),
        "flags": wanted,
        "avx512": any(f.startswith("avx512") for f in flags),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx": any(f.startswith("amx") for f in flags),
    }
