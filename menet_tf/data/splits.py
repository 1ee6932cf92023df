"""The one rule that names a data root's splits: which folder trains, which one is the test set.

``train``, ``evaluate``, ``table`` and ``compare-authors`` all take a data root with split
folders; they all ask this module, so that a root scores and trains the same way everywhere.
The test set is ``test/`` (or ``testing/``); a root without one falls back to ``val/``.
"""
import dataclasses
import os
from typing import Dict, Optional

from menet_tf.data.pairs import Discovery, discover_splits

TRAIN_NAMES = ("train", "training")
TEST_NAMES = ("test", "testing")
VALIDATION_NAMES = ("val", "validation")


@dataclasses.dataclass
class Splits:
    """A data root's split folders by role (None where the root has no such folder)."""

    train: Optional[Discovery]
    test: Optional[Discovery]
    validation: Optional[Discovery]
    found: Dict[str, Discovery]  # every split, by folder relative to the root ("." = the root)

    @property
    def test_role(self):
        """What the test scores are: "test", or "validation" when the root has no test/ folder
        and val/ stands in (reported under that name, never as test scores)."""
        return "validation" if self.test is not None and self.test is self.validation else "test"

    def folder_of(self, discovery):
        """The folder of ``discovery`` relative to the root ("test", "val"; "." = the root)."""
        return next(key for key, found in self.found.items() if found is discovery)

    def describe_test(self):
        """The test split as the user should read it, e.g. "test/" or "val/ (the validation
        split: no test/ folder)"."""
        folder = self.folder_of(self.test).rstrip("/") + "/"
        if self.test_role == "validation":
            return f"{folder} (the validation split: no test/ folder)"
        return folder


def named_splits(root):
    """The splits of ``root`` (see :func:`~menet_tf.data.pairs.discover_splits`) by role."""
    found = discover_splits(root)
    by_name = {}
    for key, discovery in found.items():
        by_name.setdefault(os.path.basename(key).lower(), discovery)

    def first(names):
        return next((by_name[n] for n in names if n in by_name), None)

    validation = first(VALIDATION_NAMES)
    return Splits(train=first(TRAIN_NAMES), test=first(TEST_NAMES) or validation,
                  validation=validation, found=found)
