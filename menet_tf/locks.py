"""One process per folder: a lock file holding the process id of the command that works there.

Why: two `menet-tf train` on one run folder (or two `menet-tf table` on one runs folder) would
each save their own state over the other's. The lock is a file created exclusively
(``O_CREAT | O_EXCL``) with the holder's pid in it; a lock whose process no longer runs (killed,
machine restarted) is stale and taken over. Basics only: train and table both use it.
"""
import contextlib
import os
import time

from menet_tf.errors import MenetError

# The lock files of the commands that take one (dot files: listings of results skip them).
TRAIN_LOCK = ".train.lock"
TABLE_LOCK = ".table.lock"
LOCK_FILES = (TRAIN_LOCK, TABLE_LOCK)


def is_lock(name):
    """Whether ``name`` is one of menet-tf's lock files (not a user's file, not a result)."""
    return os.path.basename(name) in LOCK_FILES


class FolderLock:
    """``with FolderLock(folder, TRAIN_LOCK, "`menet-tf train`", hint):`` holds ``folder``
    for this process; entering raises one-line MenetError naming the folder and the holder's pid
    while another live process holds it. The folder must exist."""

    def __init__(self, folder, name, what, hint="wait for it to end"):
        self.folder, self.path = folder, os.path.join(folder, name)
        self.what, self.hint = what, hint
        self.held = False

    def __enter__(self):
        for _ in range(3):  # a stale lock removed, or one released between two looks
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid = holder(self.path) or _after_a_moment(self.path)
                if pid and alive(pid):
                    raise MenetError(f"{self.folder}: in use by another {self.what} (process"
                                     f" {pid}, lock {self.path}); {self.hint}") from None
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.path)  # stale: its process is gone
                continue
            except OSError as err:
                raise MenetError(f"{self.path}: cannot take the lock of the folder"
                                 f" ({err.strerror})") from None
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            self.held = True
            return self
        raise MenetError(f"{self.path}: cannot take the lock of the folder")

    def __exit__(self, *exc):
        if self.held and holder(self.path) == os.getpid():  # never another process's lock
            with contextlib.suppress(OSError):
                os.remove(self.path)
        self.held = False
        return False


def _after_a_moment(path):
    """The holder of a lock that read empty: one being written this instant gets a moment to
    show its pid before it counts as stale."""
    time.sleep(0.2)
    return holder(path)


def holder(path):
    """The process id written in the lock file, 0 when missing or unreadable."""
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def alive(pid):
    """Whether a process of id ``pid`` runs (a process of another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
