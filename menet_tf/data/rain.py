"""The rain renderer: streak layers, a veil, and how they are blended onto a clean image.

Why this model: Rain100H and Rain100L (Yang et al., JORDER, CVPR 2017) were rendered by adding
streak layers to clean photos, ``O = B + R``: each layer is sparse random "drops" smeared along
one direction by a motion-blur (line) kernel; Rain100H has five streak directions, dense, thin and
long, over a brightening veil (rain accumulation); Rain100L one sparse direction. The physical
parameters are the fields of ``RainModel``: per layer a density, length, width, brightness,
defocus blur and direction (the image's main direction, drawn per image, plus a small offset per
layer), and per image a veil (mean and low-frequency texture). ``heavy`` and ``light`` are
calibrated against the real sets' statistics (``menet_tf.data.rain_stats``; docs/rain.md).

The presets of menet-tf 0.2 stay as ``heavy-0.2`` and ``light-0.2`` (``RainPreset``, rendered by
exactly the old code, so a seed gives the same bytes as before).
"""
from dataclasses import asdict, dataclass

import numpy as np

from menet_tf.errors import DataError

#: Version of the renderer of ``RainModel`` presets, recorded in synth.json.
RENDERER_VERSION = 2


@dataclass(frozen=True)
class RainPreset:
    """menet-tf 0.2's streak parameters; ranges are (low, high) drawn per image or per layer."""

    layers: tuple        # number of streak layers (directions)
    density: tuple       # fraction of pixels that start a streak, per layer
    length: tuple        # streak length in pixels
    width: tuple         # Gaussian widening of drops (sigma, pixels; 0 = 1-pixel streaks)
    brightness: tuple    # peak streak intensity in 0..1
    angle: tuple         # main direction, degrees from vertical
    spread: float        # max deviation of further layers from the main direction, degrees


@dataclass(frozen=True)
class RainModel:
    """Physical rain parameters; (low, high) ranges are drawn uniformly per image or per layer."""

    layers: tuple        # streak layers per image (each its own direction, depth and brightness)
    density: tuple       # fraction of pixels that start a streak, per layer (drawn per image)
    length: tuple        # streak length in pixels, per layer
    width: tuple         # Gaussian sigma across a streak (pixels; 0 = one pixel), per layer
    brightness: tuple    # peak brightening of a streak in 0..1, per layer
    blur: tuple          # defocus: Gaussian sigma applied to the whole layer (pixels)
    angle: tuple         # the image's main direction, degrees from vertical (across images)
    spread: float        # each layer's direction within +-spread of the main one (in an image)
    veil: tuple          # brightening that covers everything (accumulation), 0..1, log-uniform
    veil_texture: float  # relative low-frequency variation of the veil (0 = uniform)
    drop: tuple = (0.4, 1.0)  # intensity of one drop before the layer's brightness


PRESETS = {
    "heavy": RainModel(layers=(5, 5), density=(0.001, 0.005), length=(20, 40), width=(0.4, 0.8),
                       brightness=(0.34, 0.64), blur=(0.3, 0.8), angle=(-8.5, 8.5), spread=4.0,
                       veil=(0.0005, 0.025), veil_texture=0.5),
    "light": RainModel(layers=(1, 1), density=(0.0027, 0.0045), length=(16, 32),
                       width=(0.4, 0.7), brightness=(0.25, 0.45), blur=(0.0, 0.7),
                       angle=(-20.0, 25.0), spread=0.0, veil=(0.0, 0.0), veil_texture=0.0,
                       drop=(0.1, 1.0)),
    "heavy-0.2": RainPreset(layers=(3, 4), density=(0.0004, 0.0008), length=(28, 52),
                            width=(0.8, 1.4), brightness=(0.80, 1.0), angle=(-30, 30),
                            spread=25.0),
    "light-0.2": RainPreset(layers=(1, 1), density=(0.0035, 0.005), length=(12, 24),
                            width=(0.0, 0.4), brightness=(0.45, 0.65), angle=(-20, 20),
                            spread=0.0),
}


def preset_of(preset):
    """A preset by name (or the object itself); a one-line DataError for an unknown name."""
    if isinstance(preset, (RainPreset, RainModel)):
        return preset
    if preset not in PRESETS:
        raise DataError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[preset]


def describe(preset):
    """What synth.json records of a preset: the renderer's version and every parameter."""
    p = preset_of(preset)
    return {"renderer_version": RENDERER_VERSION if isinstance(p, RainModel) else "0.2",
            "rain_model": type(p).__name__, "preset_params": asdict(p)}


# ----------------------------------------------------------------------------------------------
# streaks

def motion_kernel(length, angle_deg):
    """Normalised line kernel of ``length`` pixels at ``angle_deg`` from vertical (anti-aliased)."""
    length = max(int(round(length)), 1)
    size = length + 2 + (length % 2 == 0)
    k = np.zeros((size, size), np.float64)
    c = size // 2
    theta = np.deg2rad(angle_deg)
    dy, dx = np.cos(theta), np.sin(theta)
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, 2 * length):
        y, x = c + t * dy, c + t * dx
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        fy, fx = y - y0, x - x0
        for yy, xx, w in ((y0, x0, (1 - fy) * (1 - fx)), (y0 + 1, x0, fy * (1 - fx)),
                          (y0, x0 + 1, (1 - fy) * fx), (y0 + 1, x0 + 1, fy * fx)):
            if 0 <= yy < size and 0 <= xx < size:
                k[yy, xx] += w
    return k / k.sum()


def streak_layer(rng, height, width, density, length, angle, sigma, brightness):
    """One layer of streaks in one direction: [H, W] float in 0..brightness (menet-tf 0.2)."""
    from scipy.ndimage import gaussian_filter
    from scipy.signal import fftconvolve

    drops = (rng.random((height, width)) < density) * rng.uniform(0.4, 1.0, (height, width))
    if sigma > 0.05:
        drops = gaussian_filter(drops, sigma) * (2 * np.pi * sigma ** 2) ** 0.5
    layer = fftconvolve(drops, motion_kernel(length, angle), mode="same") * length
    return np.clip(layer, 0.0, None) * brightness


def _streaks_0_2(rng, height, width, p):
    layers = int(rng.integers(p.layers[0], p.layers[1] + 1))
    base = rng.uniform(*p.angle)
    total = np.zeros((height, width))
    for i in range(layers):
        angle = base if i == 0 else base + rng.uniform(-p.spread, p.spread)
        total += streak_layer(rng, height, width, rng.uniform(*p.density), rng.uniform(*p.length),
                              angle, rng.uniform(*p.width), rng.uniform(*p.brightness))
    return np.clip(total, 0.0, 1.0)


def _layer_spectrum(rng, height, width, p, main_angle, density, freq2):
    """One streak layer of a ``RainModel`` as a spectrum (rfft2): drops, widened across by a
    Gaussian (keeping an isolated streak's peak), smeared along the layer's direction by a line
    kernel, defocused by a Gaussian, scaled by the layer's brightness. All of it is linear, so
    it is one product of spectra, on a torus larger than the image by more than a streak (so
    nothing wraps into the image, and drops outside it still streak into it)."""
    from scipy import fft

    length = rng.uniform(*p.length)
    sigma = rng.uniform(*p.width)
    brightness = rng.uniform(*p.brightness)
    blur = rng.uniform(*p.blur)
    angle = main_angle + rng.uniform(-p.spread, p.spread)
    drops = (rng.random((height, width)) < density) * rng.uniform(*p.drop, (height, width))
    sigma = sigma if sigma > 0.05 else 0.0
    blur = blur if blur > 0.05 else 0.0
    gain = brightness * length * ((2 * np.pi * sigma ** 2) ** 0.5 if sigma else 1.0)
    gauss = np.exp(-2 * np.pi ** 2 * (sigma ** 2 + blur ** 2) * freq2)
    return fft.rfft2(drops) * _kernel_spectrum(motion_kernel(length, angle), height, width) \
        * (gauss * gain)


def _kernel_spectrum(kernel, height, width):
    """rfft2 of a centred kernel on the (height, width) torus."""
    from scipy import fft

    m, c = kernel.shape[0], kernel.shape[0] // 2
    torus = np.zeros((height, width))
    ys, xs = (np.arange(m) - c) % height, (np.arange(m) - c) % width
    np.add.at(torus, (ys[:, None], xs[None, :]), kernel)
    return fft.rfft2(torus)


def _veil(rng, height, width, p):
    """Brightening over everything: a level (log-uniform: most images a little, a few a lot),
    varied smoothly across the image by ``veil_texture``."""
    from scipy.ndimage import gaussian_filter, zoom

    low, high = p.veil
    if high <= 0:
        return np.zeros((height, width))
    level = low * (high / low) ** rng.random() if low > 0 else rng.uniform(low, high)
    if p.veil_texture <= 0:
        return np.full((height, width), level)
    coarse = rng.standard_normal((height // 32 + 2, width // 32 + 2))
    smooth = zoom(gaussian_filter(coarse, 1.0), 32, order=1)[:height, :width]
    smooth = smooth / (smooth.std() + 1e-9)
    return level * np.clip(1.0 + p.veil_texture * smooth, 0.0, None)


def rain_streaks(rng, height, width, preset):
    """The rain layer R of a preset (streaks and veil): [H, W] float in 0..1."""
    from scipy import fft

    p = preset_of(preset)
    if isinstance(p, RainPreset):
        return _streaks_0_2(rng, height, width, p)
    layers = int(rng.integers(p.layers[0], p.layers[1] + 1))
    main_angle, density = rng.uniform(*p.angle), rng.uniform(*p.density)
    veil = _veil(rng, height, width, p)
    margin = int(np.ceil(p.length[1] + 4 + 4 * (p.width[1] + p.blur[1])))
    th, tw = (fft.next_fast_len(n + margin, real=True) for n in (height, width))
    freq2 = np.fft.fftfreq(th)[:, None] ** 2 + np.fft.rfftfreq(tw)[None, :] ** 2
    spectrum = np.zeros((th, tw // 2 + 1), complex)
    for _ in range(layers):
        spectrum += _layer_spectrum(rng, th, tw, p, main_angle, density, freq2)
    streaks = np.clip(fft.irfft2(spectrum, s=(th, tw))[:height, :width], 0.0, None)
    return np.clip(veil + streaks, 0.0, 1.0)


def add_rain(clean, streaks, blend="additive"):
    """Compose a rainy image from clean [H, W, 3] uint8 and streaks [H, W] in 0..1 -> uint8."""
    b = clean.astype(np.float64) / 255.0
    r = streaks[..., None]
    if blend == "additive":
        o = b + r
    elif blend == "screen":
        o = 1.0 - (1.0 - b) * (1.0 - r)
    else:
        raise DataError(f"unknown blend {blend!r}; choose additive or screen")
    return np.clip(np.round(o * 255.0), 0, 255).astype(np.uint8)
