"""Errors menet-tf raises for bad input: each names the file or value at fault.

They subclass ValueError so callers that already catch ValueError keep working; the CLI prints
them as one line instead of a traceback.
"""


class MenetError(ValueError):
    """Base class for every user-facing error of menet-tf."""


class DataError(MenetError):
    """An image file, folder or pair that cannot be used (message names the file)."""


class CheckpointError(MenetError):
    """A TF1 checkpoint that does not fit the model (message lists what does not fit)."""


class ConfigError(MenetError):
    """An experiment configuration that is unknown or inconsistent."""
