"""The precision vocabulary: ``fp32 | bf16 | fp16``, one word per precision for every command and
configuration (train, derain, evaluate, export, bench, serve).

Why one home: training used Keras' policy names and inference its own short names, so one word
was refused by one command and deprecated by the next. Each name means:

- fp32: float32 everywhere.
- bf16 / fp16: the network computes in bfloat16 / float16. Training keeps mixed precision (Keras'
  ``mixed_bfloat16`` / ``mixed_float16`` policy: variables, losses and the optimizer in
  float32; fp16 with a dynamic loss scale); inference runs a half-precision twin with weights
  folded and cast once (``menet_tf.infer.precision``).

The 0.1/0.2 spellings (the policy names ``float32``, ``mixed_bfloat16``, ``mixed_float16``) are
still taken, with a one-line notice on the command line until menet-tf ``REMOVED_IN``;
configuration files written by those versions keep loading (``canonical``).
"""
from menet_tf.errors import ConfigError

NAMES = ("fp32", "bf16", "fp16")

#: name -> the Keras dtype policy training runs under (and the inference twin's).
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
#: name -> the compute dtype's name.
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}

#: The 0.1/0.2 spellings (training's policy names): deprecated on the command line.
OLD_NAMES = {policy: name for name, policy in POLICIES.items()}
#: Other spellings the library takes quietly (dtype names).
OTHER_NAMES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16"}

HELP = ("fp32, bf16 or fp16 (the old float32, mixed_bfloat16, mixed_float16 still work, with a"
        " notice)")


def canonical(text, error=ConfigError):
    """``fp32``, ``bf16`` or ``fp16`` for any spelling of one (case-insensitive); ``error`` for
    anything else."""
    key = str(text).lower()
    key = OLD_NAMES.get(key, OTHER_NAMES.get(key, key))
    if key not in POLICIES:
        raise error(f"unknown precision {text!r}; precision must be one of {', '.join(NAMES)}")
    return key


def is_old_name(text):
    """A 0.1/0.2 spelling (``mixed_bfloat16``, ...), deprecated on the command line."""
    return str(text) in OLD_NAMES


def policy(text):
    """The Keras dtype policy of a precision (any spelling)."""
    return POLICIES[canonical(text)]
