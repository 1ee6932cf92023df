"""Atomic writes (issue 14, point 11): config.json and write_all's multi-file writes never leave
half a file under a final name, and their temporary names are ones the clean-up recognises."""
import os

import pytest

from menet_tf import files
from menet_tf.config import released_config, save_config


def test_save_config_failing_midway_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    config = released_config("MENET-GB")
    save_config(config, path)
    before = path.read_text()
    # json.dump writes '{"name": ...' and then fails on the object: a write cut short.
    monkeypatch.setattr(type(config), "to_dict", lambda self: {"name": "x", "bad": object()})
    with pytest.raises(TypeError):
        save_config(config, path)
    assert path.read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["config.json"]


def test_write_all_syncs_every_file_under_a_recognised_temporary_name(tmp_path, monkeypatch):
    seen = []
    real_fsync = os.fsync

    def fsync(fd):
        seen.append(sorted(os.listdir(tmp_path)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    files.write_all({tmp_path / "table.csv": "a,b\n", tmp_path / "table.md": "| a |\n"})
    assert len(seen) == 2  # each file synced before any is moved into place
    assert all(files.is_partial(name) for name in seen[-1])
    assert sorted(os.listdir(tmp_path)) == ["table.csv", "table.md"]


def test_write_all_interrupted_changes_no_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    (tmp_path / "metrics.csv").write_text("old metrics\n")
    (tmp_path / "summary.json").write_text("{}\n")
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second file is written
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(KeyboardInterrupt):
        files.write_all({tmp_path / "metrics.csv": "new\n", tmp_path / "summary.json": '{"a": 1}\n'})
    assert (tmp_path / "metrics.csv").read_text() == "old metrics\n"
    assert (tmp_path / "summary.json").read_text() == "{}\n"
    assert sorted(os.listdir(tmp_path)) == ["metrics.csv", "summary.json"]


@pytest.mark.parametrize("name, partial", [
    (".table.csv.partial", True), (".model.keras.partial.keras", True), (".partial-x1", True),
    ("table.csv", False), (".cache", False), ("notes.partial", False)])
def test_is_partial_knows_only_its_own_temporary_names(name, partial):
    assert files.is_partial(name) is partial
