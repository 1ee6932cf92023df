"""The port's speed goals (docs/speed.md, "Where the speed goals stand") against what a bench
run measured.

A goal holds for the full sizes: a ``--quick`` run records its ratios but claims none. The
float32 goals are against the authors' float32 graph on the same CPU, interleaved; the
half-precision goals (bf16 or OpenVINO inference at least 2x the authors' float32 graph) hold
only on a CPU with AVX512_BF16 or AMX.
"""
from menet_tf.bench.keys import keys_of

# role (menet_tf.bench.keys), target ratio (authors' time / the port's), what it says.
GOALS = (
    ("train", 1.15, "training step at least 1.15x faster than the authors' graph"),
    ("infer_one", 1.25, "inference at batch 1 at least 1.25x faster than the authors' graph"),
    ("infer_batch", 1.15, "inference at batch 20 at least 1.15x faster than the authors' graph"),
)
GB_OVER_MSE_GOAL = 1.10  # a MENET-GB step at most 10% slower than the MSE-only step
LOW_PRECISION_GOALS = (
    ("infer_one", 2.0, "bf16/OpenVINO inference, 224x224 batch 1, at least 2x the authors' float32"),
    ("infer_large", 2.0, "bf16/OpenVINO inference, one Rain100L image, at least 2x the authors'"
     " float32"),
)


def _goal_entry(text, target, ratio, claim, met):
    """One goal's row: the measured ratio (wall and CPU time) and whether it is met, None where
    the ratio was not measured or this run claims no goal."""
    return {"goal": text, "target": target,
            "measured_wall": None if ratio is None else round(ratio["wall"], 3),
            "measured_cpu": None if ratio is None else round(ratio["cpu"], 3),
            "met": None if ratio is None or not claim else bool(met(ratio["wall"]))}


def goals(result):
    """The speed goals against what this run measured (None where not measured)."""
    st = result["settings"]
    ratios = result.get("ratios") or {}
    key = keys_of(st)
    # Goals hold for the full sizes in float32; a --quick or mixed-precision run claims none.
    claim = (st["precision"] == "fp32" and st.get("backend", "tensorflow") == "tensorflow"
             and not st["quick"])
    out = [_goal_entry(text, target, ratios.get(key[role]), claim, lambda r, t=target: r >= t)
           for role, target, text in GOALS]
    out.append(_goal_entry("MENET-GB step at most 10% over the MSE-only step", GB_OVER_MSE_GOAL,
                           result["gb_over_mse"], claim, lambda r: r <= GB_OVER_MSE_GOAL))
    if st["precision"] != "fp32" or st.get("backend") == "openvino":
        cpu = result["machine"]["cpu"]
        able = ((cpu["avx512_bf16"] or cpu["amx"])
                and (st["precision"] == "bf16" or st.get("backend") == "openvino")
                and not st["quick"])
        out += [_goal_entry(text, target, ratios.get(key[role]), able, lambda r, t=target: r >= t)
                for role, target, text in LOW_PRECISION_GOALS]
    return out
