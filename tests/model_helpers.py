"""Model fixtures shared by the inference and export tests."""
import numpy as np


def perturb_batch_norm(model, seed=0):
    """Non-trivial BN statistics (a fresh model has mean 0 / variance 1, where folding is moot)."""
    rng = np.random.default_rng(seed)
    for v in model.variables:
        name = v.path.split("/")[-1]
        if name in ("moving_mean", "beta"):
            v.assign(rng.normal(0.0, 0.1, v.shape).astype("float32"))
        elif name in ("moving_variance", "gamma"):
            v.assign(rng.uniform(0.7, 1.3, v.shape).astype("float32"))
    return model


def random_pairs(n, size=32, seed=0):
    """(rainy, clean) float32 batches in 0..255: random clean images with sparse bright "rain"."""
    rng = np.random.default_rng(seed)
    clean = rng.uniform(0, 255, [n, size, size, 3]).astype("float32")
    rainy = np.clip(clean + rng.uniform(0, 80, clean.shape) * (rng.random(clean.shape) < 0.1), 0, 255)
    return rainy.astype("float32"), clean
