"""Every flag of every command is named by a test, and the old spellings all go through one
mechanism that this file exercises.

The inventory walks the real parser (``menet_tf.cli.main.build_parser``), sub-command by
sub-command, and looks in the test sources for each flag: a flag counts as tested for a command
when one test file names both the flag (``"--no-fold"``, not followed by more of a name) and the
command (``"derain"`` as a quoted word, or ``menet-tf derain``). A new flag without a test fails
here with its command and name. That a test names the flag is all this can see; the tests that
do name them (tests/*/test_flags_*.py and the others) show each one changes what it should.

Deprecated spellings (0.1's ``--no-jit``, ``--runs``, ``--output``, ...; hidden from --help) are
left out of the inventory: they are all :class:`menet_tf.cli.options._OldSpelling` actions, so
the last test here passes each one and checks it lands where its new spelling does, with the
one-line notice. An old spelling made any other way is not an ``_OldSpelling`` and so is in
the inventory like any flag.
"""
import argparse
import pathlib
import re

import pytest

from menet_tf.cli import options
from menet_tf.cli.main import build_parser

TESTS = pathlib.Path(__file__).resolve().parent


def _commands(parser, path=()):
    """(command words, its parser) for the top level and every sub-command, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, path + (name,))


def _flags(parser, old=False):
    """(flag, action) of a parser's long options; ``old``: its old spellings instead."""
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if isinstance(action, options._OldSpelling) != old:
            continue
        for flag in action.option_strings:
            if flag.startswith("--"):
                yield flag, action


def _sources():
    return {p: p.read_text(errors="replace") for p in TESTS.rglob("*.py")}


def _names_command(text, words):
    if not words:
        return True
    word = re.escape(words[-1])
    return bool(re.search(rf"[\"']{word}[\"']|menet-tf (?:\w+ )?{word}\b", text))


def untested_flags(sources=None):
    """["command --flag", ...] that no test file names together with its command."""
    sources = _sources() if sources is None else sources
    sources = {p: t for p, t in sources.items() if p.name != pathlib.Path(__file__).name}
    missing = []
    for words, parser in _commands(build_parser()):
        for flag, _ in _flags(parser):
            pattern = re.compile(re.escape(flag) + r"(?![\w-])")
            if not any(pattern.search(t) and _names_command(t, words) for t in sources.values()):
                missing.append(" ".join(("menet-tf",) + words + (flag,)))
    return missing


def test_every_flag_of_every_command_is_named_by_a_test():
    missing = untested_flags()
    assert not missing, ("flags no test passes through their command (add a test that shows each"
                         " changes what it should):\n  " + "\n  ".join(missing))


def test_the_inventory_sees_a_missing_flag_and_a_flag_named_for_another_command():
    """The check itself can fail: remove the tests naming a flag, or keep only a test naming it
    for another command, and the flag is reported."""
    sources = _sources()
    flag = re.compile(r"--no-fold(?![\w-])")
    without = {p: t for p, t in sources.items() if not flag.search(t)}
    missing = untested_flags(without)
    assert "menet-tf derain --no-fold" in missing and "menet-tf export --no-fold" in missing
    other = {**without, TESTS / "fake_test.py": 'main(["export", "--no-fold"])'}
    missing = untested_flags(other)
    assert "menet-tf derain --no-fold" in missing and "menet-tf export --no-fold" not in missing


def _value_for(action):
    if action.nargs == 0:
        return None
    if action.choices:
        return list(action.choices)[-1]
    return "old-spelling-value"


def _old_spellings():
    for words, parser in _commands(build_parser()):
        for flag, action in _flags(parser, old=True):
            yield pytest.param(words, flag, id=" ".join(words + (flag,)))


@pytest.mark.parametrize("words,flag", list(_old_spellings()))
def test_every_old_spelling_stores_where_its_new_spelling_does_and_says_so(words, flag, capsys):
    parser = dict(_commands(build_parser()))[words]
    action = next(a for f, a in _flags(parser, old=True) if f == flag)
    # the new spelling: another option of the same parser with the same dest
    new = [a for a in parser._actions if a.dest == action.dest and a is not action
           and not isinstance(a, options._OldSpelling)]
    assert new, f"{flag} stores into {action.dest}, which no current flag sets"
    namespace = argparse.Namespace(**{action.dest: "unset"})
    value = _value_for(action)
    action(parser, namespace, value, flag)
    expected = action.const if action.nargs == 0 else value
    assert getattr(namespace, action.dest) == expected != "unset"
    err = capsys.readouterr().err
    assert f"{flag} is deprecated" in err and action.new in err and err.count("\n") == 1
