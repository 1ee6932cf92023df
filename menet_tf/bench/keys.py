"""The names of the bench's figures in its JSON: each says the batch that ran.

The bench times five things (``ROLES``); a figure's key carries the batch it was timed at
(``infer_b20`` at the full sizes, ``infer_b4`` under ``--quick``), so a JSON read on its own
never claims a batch that did not run. Code speaks of roles; the JSON of keys.
"""

#: role -> key pattern ({infer} / {train}: the inference and training batches of the run).
ROLES = {
    "infer_one": "infer_b1",
    "infer_batch": "infer_b{infer}",
    "infer_large": "infer_large",
    "train": "train_b{train}",
    "train_mse": "train_mse_b{train}",
    "train_logs": "train_logs_b{train}",
}


def keys(infer_batch, train_batch):
    """{role: key} for a run at these batches."""
    return {role: pattern.format(infer=int(infer_batch), train=int(train_batch))
            for role, pattern in ROLES.items()}


def keys_of(settings):
    """{role: key} of a result's ``settings`` (what ``run_bench`` records)."""
    return keys(settings["inference"]["batches"][1], settings["training"]["batch"])
