"""The import rule of docs/development.md, checked on every module's imports (including the lazy
ones inside functions): imports go one way, so no package reaches up or round in a loop.

The table below is that of docs/development.md; a test keeps the two alike.
"""
import ast
import pathlib
import re

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "menet_tf"
BASICS = {"config", "errors", "files", "interrupts", "locks", "machine", "precisions", "progress",
          "tf_logging"}
FACADE = {"__init__", "__main__", "_compat"}  # the public names and 0.1's aliases: above all

# package -> what it may import from menet_tf ("model.metrics": that module only)
ALLOWED = {
    "basics": {"errors", "files", "precisions"},
    "data": BASICS | {"model.metrics"},
    "model": BASICS,
    "authors": BASICS,
    "bundled": BASICS,
    "train": BASICS | {"model", "data", "infer.load"},
    "infer": BASICS | {"model", "authors.checkpoint", "bundled", "data"},
    "evaluation": BASICS | {"infer", "train", "data", "model"},
    "bench": BASICS | {"infer", "model", "data", "authors"},
    "compare": BASICS | {"infer", "bench", "authors", "model", "data"},
    "publish": BASICS | {"bundled", "infer", "evaluation", "train", "model", "data"},
    "serve": BASICS | {"infer", "bundled", "data"},
}


def _package_of(path):
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if len(parts) == 1:
        return None if parts[0] in FACADE else "basics"
    return parts[0]


def _is_module(dotted):
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imported(path):
    """Every menet_tf module a file imports, as dotted paths below menet_tf."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            base = node.module  # "from menet_tf.authors import checkpoint": the module
            names = [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base
                     for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith("menet_tf."):
                yield name[len("menet_tf."):]


def _allowed(package, target, own):
    """May ``own`` (a basic module's name, or the package) of ``package`` import ``target``?"""
    top = target.split(".")[0]
    if top == own:
        return True
    return any(target == a or target.startswith(a + ".") for a in ALLOWED[package])


def _violations():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        package = _package_of(path)
        if package in (None, "cli"):
            continue
        own = path.stem if package == "basics" else package
        for target in _imported(path):
            if target == "_compat" and path.name == "__init__.py":
                continue  # every package answers 0.1's names through _compat
            if target.split(".")[0] == "cli" or not _allowed(package, target, own):
                found.append(f"{path.relative_to(PACKAGE.parent)} imports menet_tf.{target}")
    return found


def test_every_import_follows_the_rule():
    assert _violations() == []


def test_nothing_imports_cli():
    for path in PACKAGE.rglob("*.py"):
        if _package_of(path) != "cli" and path.stem not in FACADE:
            assert not any(t.split(".")[0] == "cli" for t in _imported(path)), path


def test_the_rule_can_catch_an_upward_import(tmp_path):
    """The checker itself: an upward import and an import of a forbidden sibling are caught."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from menet_tf.evaluation.scoring import evaluate\n"
                      "import menet_tf.serve.app\n")
    assert sorted(_imported(module)) == ["evaluation.scoring", "serve.app"]
    assert not _allowed("infer", "evaluation.scoring", "infer")
    assert not _allowed("data", "model.network", "data")
    assert _allowed("data", "model.metrics", "data")
    assert not _allowed("basics", "machine", "files")
    assert _allowed("basics", "errors", "files")


def test_the_table_is_the_documented_one():
    doc = (PACKAGE.parent / "docs" / "development.md").read_text()
    table = doc[doc.index("## The import rule"):doc.index("The package for scoring")]
    rows = re.findall(r"^\| (.+?) \| (.+?) \|$", table, re.M)[1:]  # after the header
    documented = {}
    for package, allowed in rows:
        name = "basics" if package.startswith("basics") else re.search(r"`(\w+)`", package)[1]
        documented[name] = set(re.findall(r"`([\w.]+)`", allowed)) | (
            BASICS if "the basics" in allowed else set())
    documented.pop("cli")
    assert set(re.findall(r"`(\w+)`", rows[0][0])) == BASICS
    assert documented == ALLOWED
