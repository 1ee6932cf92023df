"""The authors' protocol scores its crops with ``metrics.ssim_float64`` (training's float64
SSIM, compiled) and takes batch means from the per-crop values: both must give what the
straightforward forms gave, kept here as the references."""
import numpy as np
import pytest

from menet_tf.model import metrics


def _ssim_2d_window(a, b, max_val=255.0):
    """Reference: float64 SSIM per image with the full 11x11 window, one output pixel at a time
    in NumPy (no separability, no TensorFlow), mean over the map and the channels."""
    g = metrics.gaussian_1d()
    w = np.outer(g, g)
    c1, c2 = (metrics.K1 * max_val) ** 2, (metrics.K2 * max_val) ** 2
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n, h, wd, _ = a.shape
    k = len(g)
    out = []
    for i in range(n):
        maps = []
        for m in (a[i], b[i], a[i] * b[i], a[i] ** 2 + b[i] ** 2):
            blurred = np.zeros((h - k + 1, wd - k + 1, m.shape[-1]))
            for dy in range(k):
                for dx in range(k):
                    blurred += w[dy, dx] * m[dy:dy + h - k + 1, dx:dx + wd - k + 1]
            maps.append(blurred)
        mx, my, mxy, msq = maps
        lum = (2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1)
        cs = (2 * mxy - 2 * mx * my + c2) / (msq - mx ** 2 - my ** 2 + c2)
        out.append(np.mean(lum * cs))
    return np.array(out)


def _pair(seed, shape):
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 256, shape).astype(np.float32)
    derained = np.clip(clean + rng.normal(0, 40, shape), 0, 255).astype(np.float32)  # not integers
    return derained, clean


@pytest.mark.parametrize("shape", [(3, 40, 33, 3), (2, 11, 11, 1), (1, 29, 64, 3)])
def test_ssim_float64_equals_the_2d_window_reference(shape):
    derained, clean = _pair(sum(shape), shape)
    got = metrics.ssim_float64(derained, clean).numpy()
    expected = _ssim_2d_window(derained, clean)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert 0.2 < expected.min() and expected.max() < 0.999  # neither equal nor unrelated images


def test_ssim_float64_is_trainings_ssim_before_its_float32_cast():
    derained, clean = _pair(7, (4, 48, 40, 3))
    fast = metrics.ssim_float64(derained, clean).numpy()
    np.testing.assert_allclose(fast.astype(np.float32), metrics.ssim(derained, clean).numpy(),
                               rtol=0, atol=1e-7)
    # equal images score exactly 1 under both
    assert np.all(metrics.ssim_float64(clean, clean).numpy() == 1.0)


def test_ssim_float64_refuses_images_smaller_than_its_window():
    from menet_tf.errors import MenetError

    with pytest.raises(MenetError, match="at least 11x11"):
        small = np.zeros((1, 10, 32, 3), "float32")
        metrics.ssim_float64(small, small)


def test_authors_protocol_equals_an_independent_scoring(tmp_path):
    """The protocol against tests/protocol_oracle.py: crops cut in NumPy, PSNR and SSIM by
    scikit-image in float64, a partial last batch; only the network's predictions are shared."""
    import protocol_oracle
    from menet_tf.data import synthesize
    from menet_tf.evaluation.protocols import authors_protocol
    from menet_tf.evaluation.scoring import load_test_pairs
    from menet_tf.infer.load import load_derainer

    synthesize(str(tmp_path / "data"), preset="light", seed=2, count=1, test_count=3,
               size="72x56", progress=False)
    _, pairs = load_test_pairs(str(tmp_path / "data"))
    derainer = load_derainer("menet-gb-rain100l", jit_compile=False)
    new = authors_protocol(derainer, pairs, crop_size=32, batch_size=8)  # 30 crops, last batch 6
    oracle = protocol_oracle.authors_protocol(
        derainer.predict, [(p.rainy, p.clean) for p in pairs], crop_size=32, batch_size=8)
    assert new["batches"] == oracle["batches"] == 4
    # Measured (this test, CPU): means 6.5e-7 dB and per image 1.1e-6 dB (float32 PSNR against
    # float64), SSIM 9.8e-9.
    for key in ("psnr", "input_psnr"):
        assert new[key] == pytest.approx(oracle[key], abs=4e-6), key
    np.testing.assert_allclose(new["per_image"]["psnr"], oracle["per_image"]["psnr"], rtol=0,
                               atol=4e-6)
    for key in ("ssim", "input_ssim"):
        assert new[key] == pytest.approx(oracle[key], abs=4e-8), key
    assert new["psnr"] != new["input_psnr"]  # the model's output, not its input, was scored
