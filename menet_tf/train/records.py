"""What a run folder records about itself: run.json (status, sessions, environment)."""
import os

from menet_tf.files import read_json

RUN_RECORD = "run.json"
FINAL_MODEL = "model.keras"


def read_run_record(folder):
    """The run's record (run.json) as a dict; empty when there is none yet."""
    return read_json(os.path.join(folder, RUN_RECORD)) or {}


def run_finished(folder):
    """A finished run: its final model is there and its record says so."""
    return (os.path.isfile(os.path.join(folder, FINAL_MODEL))
            and read_run_record(folder).get("status") == "finished")
