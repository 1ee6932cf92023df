"""The notices say the old spellings go in menet-tf 0.3 (``_compat.REMOVED_IN``, written once):
this fails once the package's version reaches it while any of them is still there, so the
promise is kept (remove them, or move REMOVED_IN and say so in the notes)."""
import argparse
import re

from menet_tf import _compat, precisions
from menet_tf.cli import options
from menet_tf.cli.main import build_parser


def _version(text):
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def _old_flags(parser=None, words=("menet-tf",)):
    """Every old spelling of a flag (an ``options._OldSpelling``), as "menet-tf CMD --flag"."""
    parser = parser or build_parser()
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _old_flags(sub, words + (name,))
        elif isinstance(action, options._OldSpelling):
            found += [" ".join(words + (flag,)) for flag in action.option_strings]
    return sorted(set(found))


def still_there(version):
    """The 0.1/0.2 spellings still present, if ``version`` is at or past their removal."""
    if _version(version) < _version(_compat.REMOVED_IN):
        return []
    left = [f"0.1 module path {name}" for name in [*_compat.OLD_MODULES,
                                                    *_compat.OLD_PACKAGE_FACES]]
    left += [f"--precision {name}" for name in precisions.OLD_NAMES]
    return left + [f"old flag {flag}" for flag in _old_flags()]


def test_no_old_spelling_outlives_the_version_its_notice_names():
    import menet_tf

    left = still_there(menet_tf.__version__)
    assert not left, (f"menet-tf {menet_tf.__version__} still has what the notices promised to"
                      f" remove in {_compat.REMOVED_IN}: " + ", ".join(left[:8]))


def test_the_check_fires_at_the_removal_version_and_not_before():
    at = still_there(_compat.REMOVED_IN + ".0")
    assert "--precision mixed_bfloat16" in at and "0.1 module path menet_tf.training" in at
    assert "old flag menet-tf train --no-jit" in at
    assert still_there("0.2.9") == []
    assert options.REMOVED_IN is _compat.REMOVED_IN  # written once


def test_the_package_version_is_the_installed_metadata_version():
    """The version the check reads is the one setup.cfg gives the wheel."""
    import configparser
    import pathlib

    import menet_tf

    setup = configparser.ConfigParser()
    setup.read(pathlib.Path(__file__).resolve().parents[2] / "setup.cfg")
    assert setup["metadata"]["version"] == menet_tf.__version__
