"""Re-make the example images of this folder from scikit-image's photographs.

Runs ``menet-tf synth`` twice (light and heavy rain, seed 0, test split only) into a temporary
folder, then keeps four of the test images under descriptive names: the light-rain cat as PNG
with its clean twin in ``clean/`` (so PSNR can be measured), the others as JPEG (quality 90) to
keep the folder small and to exercise the JPEG path. See README.md here for the photos' licences.

Usage (from the repository root): .venv/bin/python examples/make_examples.py [--force]
"""
import os
import sys
import tempfile

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))

# (preset, test image number N of `menet-tf synth`, scikit-image photo it comes from, output
# name, keep the clean twin). Test image N is drawn from photo (N mod 5) in the sorted list
# astronaut, chelsea, coffee, rocket, stereo_motorcycle; the motorcycle (Middlebury, no stated
# licence) is not used.
CHOSEN = (
    ("light-0.2", 1, "chelsea", "cat.png", True),
    ("light-0.2", 2, "coffee", "coffee.jpg", False),
    ("light-0.2", 3, "rocket", "rocket.jpg", False),
    ("heavy", 5, "astronaut", "astronaut-heavy.jpg", False),
)
SYNTH = "synth --preset {preset} --count 0 --test-count 5 --seed 0 -o {out}"


def _synthesize(preset, root):
    from menet_tf.cli.main import main

    out = os.path.join(root, preset)
    argv = SYNTH.format(preset=preset, out=out).split()
    print("menet-tf", " ".join(argv))
    if main(argv) != 0:
        sys.exit(f"menet-tf synth --preset {preset} failed")
    return os.path.join(out, "test")


def _save(source, target):
    image = Image.open(source).convert("RGB")
    if target.endswith(".jpg"):
        image.save(target, quality=90, subsampling=0)
    else:
        image.save(target, optimize=True)


def main(force=False):
    targets = [os.path.join(HERE, name) for *_, name, _ in CHOSEN]
    existing = [t for t in targets if os.path.exists(t)]
    if existing and not force:
        sys.exit(f"would overwrite {', '.join(existing)}; use --force to replace")
    os.makedirs(os.path.join(HERE, "clean"), exist_ok=True)
    with tempfile.TemporaryDirectory() as root:
        tests = {p: _synthesize(p, root) for p in sorted({c[0] for c in CHOSEN})}
        for preset, number, _, name, keep_clean in CHOSEN:
            _save(os.path.join(tests[preset], f"rain-{number}.png"), os.path.join(HERE, name))
            if keep_clean:
                _save(os.path.join(tests[preset], f"norain-{number}.png"),
                      os.path.join(HERE, "clean", name))
    print("wrote", ", ".join(os.path.relpath(t) for t in targets))


if __name__ == "__main__":
    main(force="--force" in sys.argv[1:])
