"""The quick bench every test of tests/bench reads (run once per session)."""
import json

import pytest

from bench_helpers import GRAPHS, HAVE_GRAPHS  # tests/bench_helpers.py (tests/ is on the path)

from menet_tf.cli.main import main


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    argv = ["bench", "--quick", "--repeats", "1", "--out", str(out), "--no-progress"]
    if HAVE_GRAPHS:
        argv += ["--authors", str(GRAPHS)]
    assert main(argv) == 0
    return json.loads(out.read_text())
