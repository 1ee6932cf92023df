"""Network structure: parameter counts of the released models, TF1 names, refused inputs."""
import json

import numpy as np
import pytest
import tensorflow as tf

import menet_tf
from menet_tf.model.network import MENET
from menet_tf.authors.checkpoint import variable_map

from conftest import shared_path

VARIABLES = shared_path("MENET_TF1_REFERENCE", "reference/authors_tf1").parent / "authors_variables"


def _count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


@pytest.mark.parametrize(
    "depth, attention, trainable, statistics",
    [(8, False, 671_680, 2_368), (8, True, 815_680, 3_008), (16, True, 1_407_552, 5_056)],
)
def test_parameter_counts_equal_released(depth, attention, trainable, statistics):
    model = MENET(depth, attention).ensure_built()
    assert _count(model.trainable_variables) == trainable
    assert _count(model.non_trainable_variables) == statistics


def _released_variables(name):
    """{variable: shape} of a released model, weights and BN statistics only."""
    path = VARIABLES / f"{name}.tsv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    rows = [line.split("\t") for line in path.read_text().splitlines() if not line.startswith("#")]
    return {r[0]: json.loads(r[1]) for r in rows if r[0].startswith("derain/") and "/Adam" not in r[0]}


# Every released model with a variable list in authors_variables/ (not the VGG one, none was
# released; not the Caformer ones of the Rain100H release, whose checkpoint indexes
# tests/test_authors_graphs.py reads instead).
@pytest.mark.parametrize("name", sorted(
    n for n in menet_tf.config.RELEASED if n != "ModelShallowNewVGGFixed" and "Caformer" not in n))
def test_tf1_names_and_shapes_cover_every_released_model(name):
    config = menet_tf.released_config(name)
    model = MENET(config.model.depth, config.model.attention)
    mapping = {n: list(v.shape) for n, v in variable_map(model).items()}
    assert mapping == _released_variables(name)


def test_output_is_input_plus_residual_clipped():
    model = MENET(2, False)
    x = tf.random.uniform([2, 16, 24, 3], 0, 255)
    y = model(x, training=False).numpy()
    assert y.shape == (2, 16, 24, 3)
    assert y.min() >= 0 and y.max() <= 255
    model.layer5.kernel.assign(tf.zeros_like(model.layer5.kernel))  # zero residual: identity
    np.testing.assert_allclose(model(x, training=False).numpy(), x.numpy(), atol=1e-4)


def test_accepts_uint8_and_any_multiple_size():
    model = MENET(1, True)
    out = model(np.full([1, 32, 48, 3], 200, np.uint8), training=False)
    assert out.dtype == tf.float32 and out.shape == (1, 32, 48, 3)


@pytest.mark.parametrize(
    "attention, shape, message",
    [
        (False, [1, 30, 32, 3], "height 30 is not a multiple of 4"),
        (False, [1, 32, 18, 3], "width 18 is not a multiple of 4"),
        (True, [1, 40, 32, 3], "height 40 is not a multiple of 16"),
        (False, [1, 32, 32, 1], "3 channels"),
        (False, [32, 32, 3], "batch of images"),
    ],
)
def test_refuses_bad_shapes_with_clear_error(attention, shape, message):
    model = MENET(1, attention)
    with pytest.raises(menet_tf.MenetError, match=message):
        model(tf.zeros(shape), training=False)


def test_refuses_bad_size_inside_a_graph_with_unknown_shape():
    model = MENET(1, False).ensure_built()
    fn = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, None, None, 3])])
    assert fn(tf.zeros([1, 8, 8, 3])).shape == (1, 8, 8, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of 4"):
        fn(tf.zeros([1, 10, 8, 3]))


def test_shared_kernel_is_layer5():
    model = MENET(1, False).ensure_built()
    assert model.shared_kernel is model.layer5.kernel
    assert tuple(model.shared_kernel.shape) == (3, 3, 16, 12)
