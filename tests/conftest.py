"""Shared test fixtures: where the authors' reference results and the real data live."""
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def shared_path(env, default):
    """A folder of ../shared, overridable by an environment variable (CI has ../shared)."""
    return pathlib.Path(os.environ.get(env) or (REPO.parent / "shared" / default))


@pytest.fixture(scope="session")
def reference_dir():
    path = shared_path("MENET_TF1_REFERENCE", "reference/authors_tf1")
    if not path.is_dir():
        pytest.skip(f"authors' TF1 reference results not found at {path}")
    return path
