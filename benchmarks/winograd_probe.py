"""Would Winograd convolutions make float32 inference faster than the authors' graph? A probe.

MENET's inference is 91% 3x3 convolutions of 64 channels at a quarter of the resolution, run by
the same kernels as the authors' graph. Winograd F(4x4, 3x3) needs 4x fewer multiplications in
its matrix products; this times one such convolution built from TensorFlow ops (patches,
transforms as matrix products, 36 batched channel products) against ``tf.nn.conv2d`` with bias
and ReLU, and prints the error against a float64 convolution. Not used by menet-tf: on the
project's CPUs it was slower (README, Speed).

    python benchmarks/winograd_probe.py [--repeats 30]
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Lavin & Gray's F(4x4, 3x3): interpolation points 0, +-1, +-2 and infinity.
BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64)
G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
               [0, 1, -1, 8, -8, 1]], np.float64)
INPUT_TRANSFORM = tf.constant(np.kron(BT, BT), tf.float32)   # [36, 36]
OUTPUT_TRANSFORM = tf.constant(np.kron(AT, AT), tf.float32)  # [16, 36]


def kernel_transform(kernel):
    """[3, 3, C, D] -> [36, C, D]: G g G^T for every channel pair (done once, in float64)."""
    u = np.einsum("ai,ijcd,bj->abcd", G, kernel.astype(np.float64), G)
    return u.reshape(36, kernel.shape[2], kernel.shape[3]).astype(np.float32)


def winograd_conv(x, transformed, batched_transform=False):
    """SAME 3x3 convolution of NHWC ``x`` by a kernel given as ``kernel_transform``'s output."""
    n, h, w, c = x.shape
    th, tw = -(-h // 4), -(-w // 4)
    d = transformed.shape[-1]
    tiles = n * th * tw
    padded = tf.pad(x, [[0, 0], [1, 4 * th - h + 1], [1, 4 * tw - w + 1], [0, 0]])
    patches = tf.image.extract_patches(padded, [1, 6, 6, 1], [1, 4, 4, 1], [1, 1, 1, 1], "VALID")
    patches = tf.reshape(patches, [tiles, 36, c])
    if batched_transform:
        v = tf.einsum("kp,tpc->ktc", INPUT_TRANSFORM, patches)
    else:
        patches = tf.reshape(tf.transpose(patches, [1, 0, 2]), [36, tiles * c])
        v = tf.reshape(tf.matmul(INPUT_TRANSFORM, patches), [36, tiles, c])
    m = tf.matmul(v, transformed)  # [36, tiles, d]
    y = tf.matmul(OUTPUT_TRANSFORM, tf.reshape(m, [36, tiles * d]))
    y = tf.transpose(tf.reshape(y, [4, 4, n, th, tw, d]), [2, 3, 0, 4, 1, 5])
    return tf.reshape(y, [n, 4 * th, 4 * tw, d])[:, :h, :w]


def median_ms(fn, x, repeats):
    fn(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    c = d = 64
    kernel = (rng.standard_normal((3, 3, c, d)) * 0.05).astype(np.float32)
    bias = tf.constant(rng.standard_normal(d).astype(np.float32))
    transformed = tf.constant(kernel_transform(kernel))
    candidates = {
        "tf.nn.conv2d": lambda x: tf.nn.conv2d(x, kernel, 1, "SAME"),
        "winograd F(4,3)": lambda x: winograd_conv(x, transformed),
        "winograd F(4,3), einsum transform": lambda x: winograd_conv(x, transformed, True),
    }
    print(f"oneDNN: {os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'TensorFlow default')}")
    for n, h, w in ((1, 56, 56), (20, 56, 56), (1, 81, 121)):
        x = tf.constant((rng.standard_normal((n, h, w, c)) * 30).astype(np.float32))
        exact = tf.nn.relu(tf.nn.conv2d(tf.cast(x, tf.float64), kernel.astype(np.float64), 1, "SAME")
                           + tf.cast(bias, tf.float64)).numpy()
        for name, conv in candidates.items():
            fn = tf.function(lambda x, conv=conv: tf.nn.relu(tf.nn.bias_add(conv(x), bias)))
            error = float(np.abs(fn(x).numpy() - exact).max())
            print(f"[{n}, {h}, {w}, {c}] {name:36s} {median_ms(fn, x, args.repeats):8.2f} ms"
                  f"   max error {error:.1e} (largest value {np.abs(exact).max():.0f})")


if __name__ == "__main__":
    main()
