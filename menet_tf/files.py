"""Writing result files so that a failure (disk full, killed process) never leaves half a file
under the final name: everything is written to a temporary file beside it, then renamed.

One mechanism for the whole package: run state, models, JSON/CSV/Markdown results, figures,
de-rained photos and exports all go through :func:`replacing`.
"""
import contextlib
import hashlib
import json
import os
import re

from menet_tf.errors import MenetError


def _partial(path, suffix=""):
    """The temporary name beside ``path`` (a dot file, so listings of results skip it)."""
    return os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.partial{suffix}")


# Every temporary name :func:`_partial` gives (".NAME.partial", ".NAME.partial.png"), and the
# ".partial-..." folders of writers that build a folder before moving it into place.
_PARTIAL_NAME = re.compile(r"^\.(.+\.partial(\.[A-Za-z0-9]+)?|partial-.*)$")


def is_partial(name):
    """Whether the file name ``name`` is a temporary of this module: what a process killed while
    writing leaves behind, which clean-ups may remove (nobody else makes such names)."""
    return bool(_PARTIAL_NAME.match(os.path.basename(name)))


def _remove(path):
    with contextlib.suppress(OSError):
        os.remove(path)


@contextlib.contextmanager
def replacing(path, suffix="", what="", error=MenetError):
    """Yield a temporary path beside ``path``; once the block has written it, move it into place.

    ``suffix`` keeps an ending writers insist on (``.keras``, ``.png``). On an OSError the
    temporary file is removed, the previous ``path`` (if any) is kept, and ``error`` is raised
    naming ``path`` (``what`` says what could not be written, e.g. " the model").
    """
    path = os.fspath(path)
    tmp = _partial(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        kept = " the previous version is kept;" if os.path.exists(path) else ""
        raise error(f"{path}: could not write{what} ({err.strerror or err});{kept}"
                    " nothing half-written was left") from None
    except BaseException:
        _remove(tmp)
        raise


def atomic_write(path, write, mode="w", error=MenetError):
    """Write ``path`` through ``write(file)``, synced to disk before the rename."""
    with replacing(path, error=error) as tmp:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())


def write_text(path, text, error=MenetError):
    atomic_write(path, lambda f: f.write(text), error=error)


def write_json(path, data, error=MenetError, **dump_options):
    """``data`` as indented JSON with a final newline."""
    atomic_write(path, lambda f: (json.dump(data, f, indent=2, **dump_options), f.write("\n")),
                 error=error)


def write_all(files):
    """Write {path: text} all or nothing: every file goes to its temporary name (synced to disk)
    first and is moved into place only once all were written, so a failure (disk full) or an
    interrupt changes none of them."""
    written = []
    try:
        for path, text in files.items():
            written.append((_partial(path), path))
            with open(written[-1][0], "w", newline="") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
    except OSError as err:
        _remove_all(tmp for tmp, _ in written)
        raise MenetError(f"{path}: could not write ({err.strerror or err}); nothing half-written "
                         f"was left" + ("; the previous version is kept" if os.path.exists(path)
                                        else "")) from None
    except BaseException:
        _remove_all(tmp for tmp, _ in written)
        raise
    for tmp, path in written:
        os.replace(tmp, path)


def _remove_all(paths):
    for path in paths:
        _remove(path)


def read_json(path):
    """The JSON value in ``path``, or None when it is missing or unreadable (a record that is not
    there yet, or was never finished, is the same as no record)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def sha256_of(*paths):
    """The sha256 of the files read one after the other: one file's checksum (a bundled
    model's weights), or a TF1 checkpoint's files as one (what a fine-tuned run records)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
