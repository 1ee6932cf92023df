"""fp32 against bf16 (and fp16) inference of the bundled MENET-GB, interleaved in one process.

    python benchmarks/bench_precision.py                     # 224x224 batch 1 and a Rain100L image
    python benchmarks/bench_precision.py --precisions fp32,bf16,fp16 --rounds 5 --sizes 224

Each round runs every precision once per size, in turns, so all see the same machine; printed:
the median wall-clock and process CPU time per call, the interquartile range, and the speed-up
over fp32. "224": ``Derainer.predict`` on one 224x224 image; "whole": ``Derainer.derain`` on a
481x321 Rain100L-size image (reflection-padded to 496x336, attention mean over the real image).
Emulate a CPU without bfloat16 instructions with ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI``, or
TensorFlow without oneDNN with ``TF_ENABLE_ONEDNN_OPTS=0`` (docs/speed.md, "bfloat16 inference").
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_precision.py")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--sizes", default="224,whole")
    args = parser.parse_args(argv)

    from menet_tf.infer.derainer import Derainer
    from menet_tf.infer.precision import cpu_note
    from menet_tf.infer.pretrained import pretrained
    from menet_tf.machine import cpu_info
    from menet_tf.model.conv_gradient import onednn_enabled

    precisions = args.precisions.split(",")
    sizes = args.sizes.split(",")
    model = pretrained()
    derainers = {p: Derainer(model, precision=p) for p in precisions}
    rng = np.random.default_rng(0)
    crop = rng.uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)
    image = rng.uniform(0, 255, (321, 481, 3)).astype(np.float32)
    work = {"224": lambda d: d.predict(crop), "whole": lambda d: d.derain(image)}
    cpu = cpu_info()
    print(f"{cpu['model']}, {cpu['logical_cpus']} logical CPUs, AVX512_BF16 {cpu['avx512_bf16']},"
          f" AMX {cpu['amx']}; oneDNN {onednn_enabled()};"
          f" ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '(unset)')}")
    for p in precisions:
        if cpu_note(p):
            print(f"{p}: {cpu_note(p)}")
    for size in sizes:  # trace, freeze and warm up
        for d in derainers.values():
            work[size](d)
            work[size](d)
    wall = {(s, p): [] for s in sizes for p in precisions}
    busy = {key: [] for key in wall}
    for _ in range(args.rounds):
        for size in sizes:
            for p, d in derainers.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                work[size](d)
                wall[(size, p)].append(time.perf_counter() - start)
                busy[(size, p)].append(time.process_time() - start_cpu)
    for size in sizes:
        base = (np.median(wall[(size, precisions[0])]), np.median(busy[(size, precisions[0])]))
        for p in precisions:
            w, c = np.median(wall[(size, p)]), np.median(busy[(size, p)])
            q1, q3 = np.percentile(wall[(size, p)], [25, 75])
            print(f"{size:>5} {p}: wall {w * 1e3:7.1f} ms (IQR {q1 * 1e3:.1f}-{q3 * 1e3:.1f}),"
                  f" CPU {c * 1e3:7.1f} ms; over {precisions[0]}: {base[0] / w:.2f}x wall,"
                  f" {base[1] / c:.2f}x CPU")
    print(f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}, {args.rounds} rounds")


if __name__ == "__main__":
    main()
