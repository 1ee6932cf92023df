"""`make help` lists every target of the Makefile (a target it leaves out is one nobody finds)."""
import pathlib
import re
import shutil
import subprocess

import pytest

MAKEFILE = pathlib.Path(__file__).resolve().parents[1] / "Makefile"


def _targets(text):
    """The Makefile's own targets: rule names at the start of a line (not variables, not
    $(STAMP)-style file targets, not help itself)."""
    names = set(re.findall(r"^([a-z][a-z0-9_-]*)\s*:(?!=)", text, re.M))
    return names - {"help"}


def _help_text(text):
    recipe = re.search(r"^help:.*\n((?:\t.*\n)+)", text, re.M)
    return recipe.group(1) if recipe else ""


def _missing(text):
    helped = set(re.findall(r"make ([a-z][a-z0-9_-]*)", _help_text(text)))
    return sorted(_targets(text) - helped)


def test_make_help_names_every_target():
    missing = _missing(MAKEFILE.read_text())
    assert not missing, f"`make help` does not list: {', '.join(missing)}"


def test_the_check_sees_a_target_left_out():
    text = "help:\n\t@echo \"make a   does a\"\n\na:\n\ttrue\nb: a\n\ttrue\nX := 1\n"
    assert _missing(text) == ["b"]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_help_runs_and_prints_every_target():
    done = subprocess.run(["make", "-s", "-f", str(MAKEFILE), "help"], capture_output=True,
                          text=True, cwd=MAKEFILE.parent, timeout=60)
    assert done.returncode == 0, done.stderr
    for target in _targets(MAKEFILE.read_text()):
        assert re.search(rf"make {re.escape(target)}\b", done.stdout), target
