"""Shared test fixtures: where the authors' reference results and the real data live."""
import os
import pathlib
import sys

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))  # the shared helpers (data_helpers, model_helpers) for every tier


def shared_path(env, default):
    """A folder of ../shared, overridable by an environment variable (CI has ../shared)."""
    return pathlib.Path(os.environ.get(env) or (REPO.parent / "shared" / default))


@pytest.fixture(scope="session")
def reference_dir():
    path = shared_path("MENET_TF1_REFERENCE", "reference/authors_tf1")
    if not path.is_dir():
        pytest.skip(f"authors' TF1 reference results not found at {path}")
    return path
