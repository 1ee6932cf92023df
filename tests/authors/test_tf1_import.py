"""TF1 checkpoint import: refused checkpoints list what does not fit; the CLI round trip."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import menet_tf
from menet_tf.cli.main import main
from menet_tf.authors.checkpoint import load_checkpoint, read_checkpoint, variable_map

LB = "ModelShallowNewEdgeLossBalance"


def _write_checkpoint(prefix, tensors):
    """A TF1-style checkpoint with exactly these {name: array} (SaveV2, as TF1 Saver writes)."""
    names = sorted(tensors)
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(tensors[n]) for n in names],
    )
    return str(prefix)


def _reference_tensors(reference_dir, name=LB):
    _, reader, shapes = read_checkpoint(reference_dir / name / "checkpoint")
    return {n: reader.get_tensor(n) for n in shapes}


def test_import_loads_weights_and_statistics_and_ignores_optimizer_state(reference_dir):
    model = menet_tf.MENET(8, False)
    report = load_checkpoint(model, reference_dir / LB / "checkpoint")
    tensors = _reference_tensors(reference_dir)
    assert len(report.loaded) == 101 and "global_step" in report.ignored
    assert all(n.endswith(("/Adam", "/Adam_1", "_power", "global_step")) for n in report.ignored)
    for name, variable in variable_map(model).items():
        np.testing.assert_array_equal(variable.numpy(), tensors[name])


@pytest.mark.parametrize(
    "model, message",
    [
        (lambda: menet_tf.MENET(8, True), "model variables missing from the checkpoint"),
        (lambda: menet_tf.MENET(16, False), "depth 16, attention off; the checkpoint looks like depth 8"),
        (lambda: menet_tf.MENET(4, False), "checkpoint variables the model does not have"),
    ],
)
def test_wrong_variant_is_refused(reference_dir, model, message):
    with pytest.raises(menet_tf.CheckpointError, match=message):
        load_checkpoint(model(), reference_dir / LB / "checkpoint")


def test_missing_extra_and_misshapen_variables_are_listed_and_nothing_is_assigned(reference_dir, tmp_path):
    tensors = _reference_tensors(reference_dir)
    del tensors["derain/res_3_a/res_3_a_conv/kernel"]
    tensors["derain/res_9_a/res_9_a_conv/kernel"] = np.zeros([3, 3, 64, 64], np.float32)
    tensors["derain/layer5/layer5_conv/kernel"] = np.zeros([3, 3, 16, 3], np.float32)
    prefix = _write_checkpoint(tmp_path / "broken", tensors)
    model = menet_tf.MENET(8, False).ensure_built()
    before = [v.numpy().copy() for v in model.variables]
    with pytest.raises(menet_tf.CheckpointError) as err:
        load_checkpoint(model, prefix)
    text = str(err.value)
    assert "- derain/res_3_a/res_3_a_conv/kernel" in text
    assert "- derain/res_9_a/res_9_a_conv/kernel" in text
    assert "derain/layer5/layer5_conv/kernel: checkpoint [3, 3, 16, 3], model [3, 3, 16, 12]" in text
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, model.variables))


def test_unreadable_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(menet_tf.CheckpointError, match="not a TF1 checkpoint prefix"):
        load_checkpoint(menet_tf.MENET(1), tmp_path / "nothing")
    with pytest.raises(menet_tf.CheckpointError, match=r"no TF1 checkpoint \(\*.index file\)"):
        load_checkpoint(menet_tf.MENET(1), tmp_path)
    (tmp_path / "junk.index").write_bytes(b"not a checkpoint")
    with pytest.raises(menet_tf.CheckpointError, match="cannot be read as a TF1 checkpoint"):
        load_checkpoint(menet_tf.MENET(1), tmp_path / "junk")


def test_cli_import_saves_a_keras_model_that_loads_to_identical_outputs(reference_dir, tmp_path, capsys):
    name = "ModelShallowNewCaEdgeGramGradBalance"
    out = tmp_path / "menet_gb.keras"
    assert main(["import-tf1", str(reference_dir / name / "checkpoint"), "-o", str(out), "--model", "MENET-GB"]) == 0
    assert "imported 126 variables" in capsys.readouterr().out
    expected = np.load(reference_dir / name / "expected.npz")
    loaded = keras.saving.load_model(out)
    assert loaded.task_names == ("mse", "texture", "edge") and loaded.weighting_scheme == "gb"
    reference = menet_tf.MENET(8, True)
    load_checkpoint(reference, reference_dir / name / "checkpoint")
    x = expected["infer_a_input"].astype("float32")
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), reference(x, training=False).numpy())
    # Measured 8.0e-5 (this test, CPU), as test_reference_tf1's inference outputs.
    np.testing.assert_allclose(loaded.predict_on_batch(x), expected["infer_a_output"], rtol=0,
                               atol=4e-4)
    # The output is not overwritten without --force, and a misfit says why on one line.
    assert main(["import-tf1", str(reference_dir / name / "checkpoint"), "-o", str(out)]) == 1
    assert "exists; pass --force" in capsys.readouterr().err
    bad = tmp_path / "bad.keras"
    assert main(["import-tf1", str(reference_dir / name / "checkpoint"), "-o", str(bad), "--model", "ModelShallowNew"]) == 1
    assert "does not fit this model" in capsys.readouterr().err and not bad.exists()


def test_cli_import_reads_the_architecture_off_the_checkpoint(reference_dir, tmp_path, capsys):
    out = tmp_path / "lb.keras"
    assert main(["import-tf1", str(reference_dir / LB / "checkpoint"), "-o", str(out)]) == 0
    assert "depth 8, attention off" in capsys.readouterr().out
    assert keras.saving.load_model(out).attention is False
