"""What ``menet-tf bench`` times on: the sizes (full or ``--quick``) and seeded batches."""
import dataclasses

import numpy as np

RAIN100_SIZE = (321, 481)  # height, width of a Rain100L image in landscape


class Sizes:
    """What to time: full (the goals' sizes) or quick (small, for tests and a first look)."""

    def __init__(self, quick):
        self.quick = quick
        if quick:
            self.infer_size, self.infer_batch, self.large = 64, 4, (81, 97)
            self.train_batch, self.train_size = 2, 64
            self.pipeline = dict(batch_size=4, crop_size=64, num_crops=2, epochs=1, max_batches=4)
        else:
            self.infer_size, self.infer_batch, self.large = 224, 20, RAIN100_SIZE
            self.train_batch, self.train_size = 20, 224
            self.pipeline = dict(batch_size=20, crop_size=224, num_crops=10, epochs=2, max_batches=30)

    def as_dict(self):
        return {
            "quick": self.quick,
            "inference": {"size": self.infer_size, "batches": [1, self.infer_batch],
                          "large_image": list(self.large)},
            "training": {"batch": self.train_batch, "size": self.train_size},
            "pipeline": self.pipeline,
        }


def seeded_batch(batch_size, height, width, seed):
    """A seeded rainy/clean pair of batches (streaks added to a smooth random image), 0..255."""
    rng = np.random.default_rng(seed)
    clean = rng.uniform(0, 255, [batch_size, height // 8 + 1, width // 8 + 1, 3])
    clean = np.kron(clean, np.ones([1, 8, 8, 1]))[:, :height, :width]
    rain = (rng.random(clean.shape[:3]) < 0.03)[..., None] * rng.uniform(40, 120)
    rainy = np.clip(clean + rain, 0, 255)
    return rainy.astype(np.float32), clean.astype(np.float32)


@dataclasses.dataclass
class Inputs:
    """The seeded batches every contender is timed on."""

    one: np.ndarray  # inference, batch 1
    many: np.ndarray  # inference, batch ``infer_batch``
    large: np.ndarray  # inference, one Rain100L-sized image
    rainy: np.ndarray  # training
    clean: np.ndarray

    @classmethod
    def of(cls, sizes):
        s, b = sizes.infer_size, sizes.infer_batch
        rainy, clean = seeded_batch(sizes.train_batch, sizes.train_size, sizes.train_size, seed=4)
        return cls(one=seeded_batch(1, s, s, seed=1)[0], many=seeded_batch(b, s, s, seed=2)[0],
                   large=seeded_batch(1, *sizes.large, seed=3)[0], rainy=rainy, clean=clean)
