"""Statistics of the rain in a rainy/clean pair: what a synthetic rain renderer must match.

Why here: the rain presets are calibrated against the real Rain100H/L with these figures, and the
test that keeps them calibrated must run without the real sets. The definitions are those of the
measuring script the calibration used (same formulas, same order of operations), so figures
measured here and there agree exactly.

Per image, R = rainy - clean (float, 0..255; luminance = mean of RGB):

* ``psnr_y``, ``ssim_y``: the rainy input against the clean image, Y of MATLAB's rgb2ycbcr;
* ``mean``, ``p99``: mean and 99th percentile of R (levels); ``frac>20``: share of pixels
  brightened by more than 20 levels;
* ``floor``: mean of R's 9x9 local minimum (brightening that covers everything: the veil);
* ``angle``, ``spread``: dominant streak orientation from the structure tensor of R (degrees
  from vertical, + = top leaning right) and the circular spread of orientations (degrees);
* ``length``, ``width``: lag (px) where R's autocorrelation falls to 0.5 along / across it;
* ``gray``: correlation of R between the colour channels (1 = white/grey streaks).
"""
import numpy as np

STATS = ("psnr_y", "ssim_y", "mean", "p99", "frac>20", "floor", "angle", "spread", "length",
         "width", "gray")


def y_channel(rgb):
    """Y of MATLAB's rgb2ycbcr for RGB in 0..255 (float)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def autocorr_half(r, direction_deg, max_lag=60):
    """Lag (px) where the normalised autocorrelation of ``r`` along a direction falls to 0.5."""
    from scipy import ndimage

    t = np.deg2rad(direction_deg)
    dy, dx = np.cos(t), np.sin(t)
    f = r - r.mean()
    var = (f * f).mean() + 1e-9
    h, w = f.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    for lag in range(1, max_lag + 1):
        shifted = ndimage.map_coordinates(f, [yy + lag * dy, xx + lag * dx], order=1,
                                          mode="reflect")
        if (f * shifted).mean() / var < 0.5:
            return float(lag)
    return float(max_lag)


def image_stats(rainy, clean):
    """The statistics above for one pair of [H, W, 3] images (uint8 or 0..255 float)."""
    from scipy import ndimage
    from skimage.metrics import structural_similarity

    x, c = np.asarray(rainy, np.float64), np.asarray(clean, np.float64)
    h, w = min(x.shape[0], c.shape[0]), min(x.shape[1], c.shape[1])
    x, c = x[:h, :w], c[:h, :w]
    yx, yc = y_channel(x), y_channel(c)
    psnr = 10 * np.log10(255.0 ** 2 / max(np.mean((yx - yc) ** 2), 1e-12))
    ssim = structural_similarity(yx, yc, data_range=255, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)
    r3 = x - c
    r = r3.mean(axis=2)
    angle, spread = _orientation(r)
    length = autocorr_half(r, -angle)
    width = autocorr_half(r, -angle + 90, max_lag=20)
    cc = np.corrcoef(r3.reshape(-1, 3).T)
    gray = float((cc[0, 1] + cc[0, 2] + cc[1, 2]) / 3)
    return {"psnr_y": psnr, "ssim_y": ssim, "mean": r.mean(), "p99": np.percentile(r, 99),
            "frac>20": (r > 20).mean(), "floor": ndimage.minimum_filter(r, 9).mean(),
            "angle": angle, "spread": spread, "length": length, "width": width, "gray": gray}


def _orientation(r):
    """(angle from vertical, circular spread) of the streaks in R, both in degrees."""
    from scipy import ndimage

    gx, gy = ndimage.sobel(r, axis=1), ndimage.sobel(r, axis=0)
    jxx, jyy, jxy = (ndimage.gaussian_filter(a, 2) for a in (gx * gx, gy * gy, gx * gy))
    theta2 = np.arctan2(2 * jxy, jxx - jyy)  # gradient orientation, doubled
    wgt = np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2)
    z = (wgt * np.exp(1j * theta2)).sum() / (wgt.sum() + 1e-9)
    grad_angle = np.rad2deg(np.angle(z) / 2)
    streak_from_vertical = (grad_angle + 90) % 180 - 90  # streaks are across the gradient
    spread = np.rad2deg(np.sqrt(max(-2 * np.log(max(abs(z), 1e-9)), 0)) / 2)
    return -streak_from_vertical, spread  # image y points down: flip the sign


def summarize(rows):
    """{stat: {p10, median, p90, mean}} over a list of ``image_stats`` results."""
    out = {}
    for k in STATS:
        v = np.array([row[k] for row in rows], np.float64)
        out[k] = {"p10": float(np.percentile(v, 10)), "median": float(np.median(v)),
                  "p90": float(np.percentile(v, 90)), "mean": float(v.mean())}
    return out


#: Statistics whose median must be within +-15% of the real set's (every median must also fall
#: inside the real set's p10..p90).
CLOSE = ("ssim_y", "mean", "frac>20", "floor")
CLOSE_TOLERANCE = 0.15


def verdict(ours, real):
    """Per statistic, whether our median passes the calibration rules against the real set's
    summary: {stat: (in_p10_p90, within_15_percent_or_None)}."""
    out = {}
    for k in STATS:
        m, r = ours[k]["median"], real[k]
        inside = r["p10"] <= m <= r["p90"]
        close = (abs(m - r["median"]) <= CLOSE_TOLERANCE * abs(r["median"])) if k in CLOSE else None
        out[k] = (inside, close)
    return out


def format_table(ours, real, names=("real", "ours")):
    """The calibration table as text lines: p10/median/p90 of both sets and pass/fail."""
    rows = [f"{'stat':8s} | {names[0] + ' p10':>9s} {'median':>8s} {'p90':>8s} | "
            f"{names[1] + ' p10':>9s} {'median':>8s} {'p90':>8s} | rule"]
    for k, (inside, close) in verdict(ours, real).items():
        r, o = real[k], ours[k]
        rule = ("ok" if inside else "OUT of p10-p90") + (
            "" if close is None else (", +-15% ok" if close else ", NOT within +-15%"))
        rows.append(f"{k:8s} | {r['p10']:9.4g} {r['median']:8.4g} {r['p90']:8.4g} | "
                    f"{o['p10']:9.4g} {o['median']:8.4g} {o['p90']:8.4g} | {rule}")
    return rows


def passes(ours, real):
    """Whether every rule of ``verdict`` holds."""
    return all(inside and close is not False for inside, close in verdict(ours, real).values())
