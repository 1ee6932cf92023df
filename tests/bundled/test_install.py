"""``menet-tf derain`` without ``--model`` from a wheel installed outside the checkout: the bundled
weights and registry must travel as package data, not be found in the source tree.

The wheel is built from a copy of the sources (an in-tree build would leave build/ in the
checkout, and stale files there would go into later wheels), installed with no index into a
folder of its own, and run from a folder outside the repository with no MENET_* variable and
proxies that lead nowhere, so neither ../shared, the source tree nor the network can help.

The paper's tables (the top-level experiments/ folder) travel the same way: ``menet-tf table
table1`` plans and runs from the installed copy.

The installed wheel reuses .venv's TensorFlow and other dependencies (``--no-deps``): there is no
network here to install TensorFlow afresh, so what is tested is menet-tf's own files.
"""
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[2]
SOURCES = ("setup.py", "setup.cfg", "README.md", "menet_tf", "experiments")
EXAMPLE = REPO / "examples" / "cat.png"
NOWHERE = "http://127.0.0.1:9"  # the discard port: any attempt to download fails at once

RUN = ("import sys, menet_tf; from menet_tf.bundled import registry;"
       " print('menet_tf from', menet_tf.__file__); print('bundled from', registry.folder());"
       " from menet_tf.cli.main import main; sys.exit(main(sys.argv[1:]))")


def _environment(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MENET_") and k not in ("PYTHONPATH", "PIP_INDEX_URL",
                                                       "PIP_FIND_LINKS")}
    env.update(HTTP_PROXY=NOWHERE, HTTPS_PROXY=NOWHERE, http_proxy=NOWHERE,
               https_proxy=NOWHERE, NO_PROXY="", no_proxy="", TF_CPP_MIN_LOG_LEVEL="3",
               **extra)
    return env


def _run(argv, cwd, **extra):
    done = subprocess.run(argv, cwd=cwd, env=_environment(**extra), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(map(str, argv))}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _copy_sources(folder):
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    folder.mkdir()
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=ignore)
        else:
            shutil.copy2(source, folder / name)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """menet-tf installed from its wheel into a folder of its own: (that folder, the wheel)."""
    root = tmp_path_factory.mktemp("install")
    _copy_sources(root / "src")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run(pip + ["wheel", ".", "--no-deps", "--no-build-isolation", "--no-index", "-w",
                str(root / "dist")], cwd=root / "src")
    wheel = next((root / "dist").glob("menet_tf-*.whl"))
    _run(pip + ["install", "--no-deps", "--no-index", "--target", str(root / "site"),
                str(wheel)], cwd=root)
    return root / "site", wheel


def test_derain_without_model_runs_from_the_installed_wheel(site, tmp_path):
    site_dir, wheel = site
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(EXAMPLE, work / "photo.png")
    printed = _run([sys.executable, "-c", RUN, "derain", "photo.png", "-o", "out", "--quiet"],
                   cwd=work, PYTHONPATH=str(site_dir))
    imported = next(line for line in printed.splitlines() if line.startswith("menet_tf from"))
    bundled = next(line for line in printed.splitlines() if line.startswith("bundled from"))
    assert str(site_dir / "menet_tf" / "__init__.py") in imported, printed
    assert str(site_dir / "menet_tf" / "bundled") in bundled, printed
    assert sum(line.startswith("model: ") for line in printed.splitlines()) == 1, printed
    written = np.asarray(Image.open(work / "out" / "photo.png"))
    assert written.shape == np.asarray(Image.open(EXAMPLE)).shape
    assert str(REPO) not in printed, f"{wheel.name} reached into the checkout:\n{printed}"


def test_the_tables_travel_in_the_wheel_with_their_configurations(site):
    site_dir, wheel = site
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    tables = {p.name for p in (REPO / "experiments").glob("*.json")}
    configs = {p.name for p in (REPO / "experiments" / "released").glob("*.json")}
    assert tables == {"table1.json", "table2.json", "table4.json", "menet.json"}
    for name in tables:
        assert f"menet_tf/evaluation/experiments/{name}" in names
    for name in configs:
        assert f"menet_tf/evaluation/experiments/released/{name}" in names


@pytest.mark.slow
def test_table1_runs_from_the_installed_wheel_outside_the_checkout(site, tmp_path):
    """`menet-tf table table1 --quick` (one row, two steps, a tiny set) from another folder."""
    from menet_tf.data import synthesize

    site_dir, wheel = site
    work = tmp_path / "elsewhere"
    data = work / "data"
    synthesize(str(data), preset="light", seed=2, count=4, test_count=2, size="72x56",
               progress=False)
    printed = _run([sys.executable, "-c", RUN, "table", "table1", "--quick", "--rows", "Lp",
                    "--steps", "2", "--data", "data", "-o", "runs", "--crop-size", "32",
                    "--batch-size", "8", "--depth", "1", "--eval-crop-size", "32",
                    "--jit-compile", "off", "--grid-images", "1", "--quiet"],
                   cwd=work, PYTHONPATH=str(site_dir))
    assert str(site_dir / "menet_tf" / "__init__.py") in printed, printed
    table = (work / "runs" / "table.md").read_text()
    assert "Quick-run numbers" in table and "ModelShallowNew" in table
    assert (work / "runs" / "Lp" / "evaluation" / "summary.json").is_file()
    assert str(REPO) not in printed, f"{wheel.name} reached into the checkout:\n{printed}"
