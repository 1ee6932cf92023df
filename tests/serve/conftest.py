"""Fixtures of the serve tests: the bundled model loaded once, and apps built around it with
the limits a test needs. The serve extra is optional: without it every test here is skipped
with one reason."""
import contextlib

import pytest

from serve_helpers import need_serve_extra  # tests/serve_helpers.py (tests/ is on the path)


@pytest.fixture(scope="session")
def derainer():
    need_serve_extra()
    from menet_tf.infer.derainer import Derainer

    return Derainer.from_pretrained()


@pytest.fixture(scope="session")
def info(derainer):
    from menet_tf.serve.describe import describe

    return describe("menet-gb-rain100l", derainer)


@pytest.fixture
def serve(derainer, info):
    """``serve(**limits)``: a started TestClient around the bundled model (or ``derainer=``)."""
    import warnings

    from menet_tf.serve.app import create_app
    from menet_tf.serve.limits import Limits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's note on httpx versions
        from starlette.testclient import TestClient

    with contextlib.ExitStack() as stack:
        def make(derainer=derainer, **limits):
            app = create_app(derainer, info, Limits(**limits))
            return stack.enter_context(TestClient(app))

        yield make


