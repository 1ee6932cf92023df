"""The flags every command spells the same way, and the old spellings kept for one release.

- ``-o/--out``: what the command writes (a folder, or a file where the command writes one).
- ``--model``: a model *source*: a bundled model's name, run folder, ``.keras`` file, the
  authors' TF1 checkpoint (prefix or folder), an exported SavedModel folder or OpenVINO IR.
- ``--precision {fp32,bf16,fp16}``: one vocabulary for every command (``menet_tf.precisions``).
- ``--model-name``: a released configuration's name or alias (``MENET-GB``), where a source
  does not say which network it holds.
- ``--jit-compile {auto,on,off}``: XLA. ``--quiet``: no progress bars.

An old spelling still works and prints one line naming the new one.
"""
import argparse
import os
import sys

from menet_tf import precisions
from menet_tf._compat import REMOVED_IN
from menet_tf.errors import MenetError

JIT_CHOICES = ("auto", "on", "off")
MODEL_SOURCE_HELP = ("a bundled model's name (`menet-tf models`), run folder (its model.keras), "
                     ".keras file, the authors' TF1 checkpoint prefix or folder, an exported "
                     "SavedModel folder, or an OpenVINO IR (its .xml, or the folder `export "
                     "--format openvino` wrote)")
MODEL_NAME_HELP = ("released configuration name or alias (e.g. MENET-GB) of a TF1 checkpoint "
                   "whose folder does not say it")


def deprecated(old, new):
    print(f"menet-tf: {old} is deprecated and will be removed in menet-tf {REMOVED_IN}; "
          f"use {new}", file=sys.stderr)


class _OldSpelling(argparse.Action):
    """Stores into the new flag's ``dest`` (the value given, or ``const`` for a bare switch)."""

    def __init__(self, option_strings, dest, new, nargs=None, const=None, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, nargs=nargs, const=const, help=argparse.SUPPRESS,
                         **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        deprecated(option_string, self.new)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def old_spelling(parser, flag, dest, new, const=None, **kwargs):
    """Accept ``flag`` as an old spelling of ``new``; a bare switch stores ``const``."""
    nargs = 0 if const is not None else None
    parser.add_argument(flag, dest=dest, action=_OldSpelling, new=new, nargs=nargs, const=const,
                        **kwargs)


def add_out(parser, help, *, required=False, default=None, metavar=None, old=()):
    """``-o/--out``; ``old`` spellings store into it too. With ``old`` spellings a required
    output is checked by :func:`require` after parsing (argparse cannot see the aliases)."""
    parser.add_argument("-o", "--out", required=required and not old, default=default,
                        metavar=metavar, help=help)
    for flag in old:
        old_spelling(parser, flag, "out", "-o/--out", metavar=metavar)


def require(args, dest, flag):
    if getattr(args, dest, None) is None:
        raise MenetError(f"{flag} is required")


def add_model(parser, *, required=True, help=MODEL_SOURCE_HELP, metavar="SOURCE"):
    parser.add_argument("--model", required=required, metavar=metavar, help=help)


def model_or_default(source, announce=True):
    """``source``, or the bundled default model's name with one line saying which it is
    (derain, export and serve run the bundled model when --model is not given; serve prints
    its own line for any model, so it does not ``announce``)."""
    if source is not None:
        return source
    from menet_tf.bundled.card import network_words
    from menet_tf.bundled.registry import default_name, entry

    name = default_name()
    if not announce:
        return name
    record = entry(name)
    training = record["training"]
    print(f"model: {name}, the bundled default: {network_words(record)} trained on"
          f" {training['data']}, {training['epochs']} epochs ({training['steps']} steps);"
          " --model picks another")
    return name


def add_model_name(parser, help=MODEL_NAME_HELP):
    parser.add_argument("--model-name", metavar="NAME", default=None, help=help)


def is_released_name(text):
    """A released configuration's name or alias that is not also a path on disk."""
    from menet_tf.config import ALIASES, RELEASED

    return not os.path.exists(text) and (text in RELEASED or text in ALIASES)


def add_jit_compile(parser, *, default=None, help=None, old=()):
    """``--jit-compile {auto,on,off}`` (None: the configuration's, itself auto by default);
    ``old`` may hold ``--jit`` (same values) and ``--no-jit`` (off)."""
    parser.add_argument("--jit-compile", choices=JIT_CHOICES, default=default,
                        help=help or "XLA compilation (auto: on with a GPU, off on a CPU)")
    for flag in old:
        if flag == "--no-jit":
            old_spelling(parser, flag, "jit_compile", "--jit-compile off", const="off")
        else:
            old_spelling(parser, flag, "jit_compile", "--jit-compile", choices=JIT_CHOICES)


def jit_compile_value(text):
    """The library's ``jit_compile`` for a flag value: "auto", True, False (None stays None)."""
    return {None: None, "auto": "auto", "on": True, "off": False}[text]


def add_quiet(parser, *, old=()):
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    for flag in old:
        old_spelling(parser, flag, "quiet", "--quiet", const=True)


# Precision (train, derain, evaluate, export, bench, serve): one vocabulary, menet_tf.precisions.
PRECISION_CHOICES = precisions.NAMES
BACKEND_CHOICES = ("tensorflow", "openvino")
INFERENCE_PRECISION_HELP = (
    "inference precision (default fp32). bf16: weights cast once after batch norm is folded,"
    " output float32; fast on CPUs with AVX512_BF16 or AMX, slower elsewhere (one line says so);"
    " fp16 on GPUs. With --backend openvino: its precision hint")


def precision_value(text):
    """An argparse ``type``: a 0.1/0.2 spelling (``mixed_bfloat16``, ...) becomes its new name,
    with the one-line notice; anything else is left to ``choices``."""
    if precisions.is_old_name(text):
        new = precisions.OLD_NAMES[text]
        deprecated(f"--precision {text}", f"--precision {new}")
        return new
    return text


def add_precision(parser, *, choices=PRECISION_CHOICES, default="fp32",
                  help=INFERENCE_PRECISION_HELP):
    """``--precision {fp32,bf16,fp16}``; the old spellings are taken too (not listed)."""
    parser.add_argument("--precision", choices=choices, default=default, type=precision_value,
                        help=help)


def add_backend(parser):
    parser.add_argument(
        "--backend", choices=BACKEND_CHOICES, default="tensorflow",
        help="inference runtime (default tensorflow); openvino needs"
             " `pip install menet-tf[openvino]` (docs/speed.md says when it is faster)")
