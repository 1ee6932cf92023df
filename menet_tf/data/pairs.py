"""Finding rainy/clean pairs in the folder layouts people actually downloaded.

Layouts (auto-detected in this order, or forced with ``layout=``):

``list``
    ``source`` is a text file with one pair per line: ``rainy clean`` separated by a tab, a comma
    or white space; paths relative to the file's folder; ``#`` starts a comment.
``jorder``
    The authors' (Yang et al., JORDER) folders: ``norain-N.png`` and ``rain-N.png`` side by side,
    optionally ``rainstreak-N.png`` (and ``rainregion-N.png``, ignored). Also what
    ``menet-tf synth`` writes.
``twin_folders``
    A rainy folder and a clean folder (``rain/`` + ``norain/``, ``rainy/`` + ``clean/``,
    ``input/`` + ``target/``, ``data/`` + ``gt/`` ...) holding files of the same names. Names are
    matched after dropping a ``rain-``/``norain-``-like prefix and the extension, so
    ``rain/rain-1.png`` pairs with ``norain/norain-1.png`` and ``rain/norain-1.png`` (as in the
    shared Rain100L copy) pairs with ``norain/norain-1.png``. Images one folder down and a
    scale suffix are accepted too (JORDER-style ``rain/X2/norain-1x2.png``).
``rainy_subfolder``
    The widespread PReNet-style copies: ``rainy/rain-NNN.png`` with ``norain-NNN.png`` in the
    parent folder.

A folder that has none of these but whose sub-folders do (``train/``, ``test/``) is a dataset
root: :func:`discover_splits` reports each split.
"""
import os
import re
from dataclasses import dataclass, field, replace
from typing import Optional, Tuple

from menet_tf.errors import DataError
from menet_tf.data.images import is_image_file

LAYOUTS = ("auto", "list", "jorder", "twin_folders", "rainy_subfolder")

RAINY_DIR_NAMES = ("rain", "rainy", "input", "inputs", "in", "data", "degraded", "o", "lq",
                   "rain_image", "rainy_image")
CLEAN_DIR_NAMES = ("norain", "clean", "target", "targets", "gt", "groundtruth", "ground_truth",
                   "label", "labels", "b", "background", "hq", "norain_image", "clean_image")
SPLIT_ORDER = ("train", "training", "val", "valid", "validation", "test", "testing")

_JORDER_RE = re.compile(r"^(norain|rainstreak|rainregion|rain)[-_](.+)$", re.IGNORECASE)
_PREFIX_RE = re.compile(r"^(no[-_]?rain|rainy|rain|clean|gt|input|target)[-_]", re.IGNORECASE)


@dataclass(frozen=True)
class KnownSet:
    """A published set: its name, expected pair count(s), split and origin."""

    name: str
    counts: Tuple[int, ...]
    split: str
    note: str


KNOWN_SETS = {
    "Rain100H": KnownSet("Rain100H", (100,), "test", "JORDER heavy test set"),
    "Rain100L": KnownSet("Rain100L", (100,), "test", "JORDER light test set"),
    "RainTrainH": KnownSet("RainTrainH", (1800, 1254), "train",
                           "JORDER heavy training set: 1800 pairs as released, 1254 after "
                           "removing the pairs overlapping Rain100H"),
    "RainTrainL": KnownSet("RainTrainL", (200,), "train", "JORDER light training set"),
}


@dataclass(frozen=True)
class Pair:
    """One rainy/clean pair; ``height``/``width`` are filled in by
    :func:`~menet_tf.data.check.validate_pairs`."""

    rainy: str
    clean: str
    key: str = ""
    streak: Optional[str] = None
    height: int = 0
    width: int = 0


@dataclass
class Discovery:
    """What :func:`discover` found: pairs plus everything that did not pair."""

    root: str
    layout: str
    pairs: list = field(default_factory=list)
    unpaired_rainy: list = field(default_factory=list)
    unpaired_clean: list = field(default_factory=list)
    duplicates: list = field(default_factory=list)  # several files claiming the same key
    ignored: list = field(default_factory=list)     # non-image / unrecognised files
    known: Optional[KnownSet] = None
    detail: str = ""                                # human-readable description of the layout


# ----------------------------------------------------------------------------------------------
# small helpers

def natural_key(text):
    """Sort key so ``rain-2`` comes before ``rain-10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _listdir(path):
    try:
        return sorted(os.listdir(path), key=natural_key)
    except PermissionError:
        raise DataError(f"{path}: folder is not readable (permission denied)") from None
    except NotADirectoryError:
        raise DataError(f"{path}: not a folder") from None
    except FileNotFoundError:
        raise DataError(f"{path}: folder does not exist") from None


def _images_in(path):
    return [n for n in _listdir(path) if is_image_file(n) and os.path.isfile(os.path.join(path, n))]


def _subdirs(path):
    return [n for n in _listdir(path) if os.path.isdir(os.path.join(path, n))]


def _strip_key(name):
    """Pairing key: no extension, no rain-/norain- prefix, no JORDER ``x2`` scale suffix."""
    stem = os.path.splitext(name)[0]
    return re.sub(r"(?<=\d)x[234]$", "", _PREFIX_RE.sub("", stem, count=1))


def _image_dir(path):
    """``path``, or its only sub-folder if the images sit one level down (JORDER's rain/X2/)."""
    if not _images_in(path):
        subs = _subdirs(path)
        if len(subs) == 1 and _images_in(os.path.join(path, subs[0])):
            return os.path.join(path, subs[0])
    return path


def _norm(name):
    return re.sub(r"[^a-z0-9]", "", name.lower())


def known_set(name):
    """Look up a known set by name, case- and punctuation-insensitively (DataError if unknown)."""
    for key, ks in KNOWN_SETS.items():
        if _norm(key) == _norm(name):
            return ks
    raise DataError(f"unknown data set name {name!r}; known: {', '.join(KNOWN_SETS)}")


def guess_known_set(path):
    """Guess Rain100H/L or RainTrainH/L from a folder's name and its parents' names.

    ``Rain100L/train`` is RainTrainL and ``Rain100L/test`` is Rain100L (the usual copies keep the
    training set inside the test set's folder); JORDER's ``rain_data_train_Heavy`` is RainTrainH.
    """
    parts = [_norm(p) for p in os.path.abspath(os.fspath(path)).split(os.sep)[-3:] if p]
    if not parts:
        return None
    here = parts[-1]
    for letter, word in (("H", "heavy"), ("L", "light")):
        for p in reversed(parts):
            if f"raintrain{letter.lower()}" in p or ("raindatatrain" in p and word in p):
                return KNOWN_SETS[f"RainTrain{letter}"]
            if "raindatatest" in p and word in p:
                return KNOWN_SETS[f"Rain100{letter}"]
    for p in reversed(parts):
        for letter in ("H", "L"):
            if f"rain100{letter.lower()}" in p:
                split = "train" if "train" in here else "test"
                return KNOWN_SETS[f"RainTrain{letter}" if split == "train" else f"Rain100{letter}"]
    return None


# ----------------------------------------------------------------------------------------------
# layout detection and discovery

def _pair_by_key(root, layout, rainy_files, clean_files):
    """Match two {path: key} listings; record what does not match."""
    disc = Discovery(os.fspath(root), layout)
    by_key_r, by_key_c = {}, {}
    for bucket, files in ((by_key_r, rainy_files), (by_key_c, clean_files)):
        for path, key in files:
            bucket.setdefault(key, []).append(path)
    for bucket in (by_key_r, by_key_c):
        for key, paths in list(bucket.items()):
            if len(paths) > 1:
                disc.duplicates.append((key, paths))
                del bucket[key]
    for key in sorted(set(by_key_r) | set(by_key_c), key=natural_key):
        if key in by_key_r and key in by_key_c:
            disc.pairs.append(Pair(by_key_r[key][0], by_key_c[key][0], key))
        elif key in by_key_r:
            disc.unpaired_rainy.append(by_key_r[key][0])
        else:
            disc.unpaired_clean.append(by_key_c[key][0])
    return disc


def _discover_jorder(root):
    rainy, clean, streaks, ignored = [], [], {}, []
    for name in _listdir(root):
        full = os.path.join(root, name)
        if os.path.isdir(full):
            continue
        m = _JORDER_RE.match(os.path.splitext(name)[0]) if is_image_file(name) else None
        if not m:
            ignored.append(full)
            continue
        kind, key = m.group(1).lower(), m.group(2)
        if kind == "rain":
            rainy.append((full, key))
        elif kind == "norain":
            clean.append((full, key))
        elif kind == "rainstreak":
            streaks[key] = full
        # rainregion-N (JORDER's binary rain masks) is not needed by MENET
    disc = _pair_by_key(root, "jorder", rainy, clean)
    disc.pairs = [replace(p, streak=streaks.get(p.key)) for p in disc.pairs]
    disc.ignored = ignored
    disc.detail = (f"JORDER: norain-N + rain-N in one folder"
                   f"{' (with rainstreak-N)' if streaks else ''}")
    return disc


def _find_twin_dirs(root, rainy_dir=None, clean_dir=None):
    subs = _subdirs(root)
    lower = {s.lower(): s for s in subs}
    r = rainy_dir or next((lower[n] for n in RAINY_DIR_NAMES if n in lower), None)
    c = clean_dir or next((lower[n] for n in CLEAN_DIR_NAMES if n in lower), None)
    return r, c


def _discover_twin(root, rainy_dir, clean_dir):
    rdir, cdir = os.path.join(root, rainy_dir), os.path.join(root, clean_dir)
    for d in (rdir, cdir):
        if not os.path.isdir(d):
            raise DataError(f"{d}: folder does not exist")
    rdir, cdir = _image_dir(rdir), _image_dir(cdir)
    rainy = [(os.path.join(rdir, n), _strip_key(n)) for n in _images_in(rdir)]
    clean = [(os.path.join(cdir, n), _strip_key(n)) for n in _images_in(cdir)]
    disc = _pair_by_key(root, "twin_folders", rainy, clean)
    disc.detail = (f"twin folders: {os.path.relpath(rdir, root)}/ + "
                   f"{os.path.relpath(cdir, root)}/, paired by file name")
    disc.ignored = [os.path.join(d, n) for d in (rdir, cdir) for n in _listdir(d)
                    if not is_image_file(n)]
    return disc


def _discover_rainy_subfolder(root, rainy_dir):
    rdir = os.path.join(root, rainy_dir)
    rainy = [(os.path.join(rdir, n), _strip_key(n)) for n in _images_in(rdir)]
    clean = [(os.path.join(root, n), _strip_key(n)) for n in _images_in(root)
             if _JORDER_RE.match(os.path.splitext(n)[0])
             and _JORDER_RE.match(os.path.splitext(n)[0]).group(1).lower() == "norain"]
    disc = _pair_by_key(root, "rainy_subfolder", rainy, clean)
    disc.detail = f"{rainy_dir}/rain-N + norain-N beside it"
    return disc


def _discover_list(path):
    base = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read pair list ({err})") from None
    disc = Discovery(os.fspath(path), "list", detail="explicit list of pairs")
    for num, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        sep = "\t" if "\t" in line else ("," if "," in line else None)
        parts = [p.strip() for p in line.split(sep)] if sep else line.split()
        if len(parts) != 2 or not all(parts):
            raise DataError(f"{path}:{num}: expected 'rainy clean' (two paths), got {line!r}")
        r, c = (p if os.path.isabs(p) else os.path.join(base, p) for p in parts)
        disc.pairs.append(Pair(r, c, f"{num}"))
    if not disc.pairs:
        raise DataError(f"{path}: pair list is empty")
    return disc


def detect_layout(path, rainy_dir=None, clean_dir=None):
    """Name the layout of ``path`` (see module docstring) or None if it holds no pairs itself."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return "list"
    if not os.path.exists(path):
        raise DataError(f"{path}: does not exist")
    if not os.path.isdir(path):
        raise DataError(f"{path}: neither a folder nor a pair-list file")
    kinds = {m.group(1).lower() for m in (_JORDER_RE.match(os.path.splitext(n)[0])
                                          for n in _images_in(path)) if m}
    if {"rain", "norain"} <= kinds:
        return "jorder"
    r, c = _find_twin_dirs(path, rainy_dir, clean_dir)
    if r and c and _images_in(_image_dir(os.path.join(path, r))) \
            and _images_in(_image_dir(os.path.join(path, c))):
        return "twin_folders"
    if r and "norain" in kinds and _images_in(os.path.join(path, r)):
        return "rainy_subfolder"
    return None


def discover(source, layout="auto", rainy_dir=None, clean_dir=None):
    """Find the rainy/clean pairs in ``source`` (a folder or a pair-list file).

    Only file names are looked at here (fast); :func:`~menet_tf.data.check.validate_pairs`
    opens the images.
    ``source`` may also be a list of ``(rainy, clean)`` paths. Raises DataError when the folder
    is missing, empty or in no recognised layout.
    """
    if isinstance(source, (list, tuple)):
        disc = Discovery("<list>", "list", detail="explicit list of pairs")
        for i, item in enumerate(source):
            if isinstance(item, Pair):
                disc.pairs.append(item)
            else:
                r, c = item
                disc.pairs.append(Pair(os.fspath(r), os.fspath(c), str(i + 1)))
        if not disc.pairs:
            raise DataError("the list of pairs is empty")
        return disc
    source = os.fspath(source)
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    if layout == "auto":
        layout = detect_layout(source, rainy_dir, clean_dir)
        if layout is None:
            if not _listdir(source):
                raise DataError(f"{source}: folder is empty")
            splits = [s for s in _subdirs(source) if detect_layout(os.path.join(source, s))]
            hint = (f"; it has sub-folders with pairs ({', '.join(splits)}): point at one of "
                    f"them" if splits else "")
            raise DataError(
                f"{source}: no rainy/clean pairs found (expected norain-N.png + rain-N.png, "
                f"rain/ + norain/ folders with the same file names, or rainy/rain-N.png + "
                f"norain-N.png){hint}")
    if layout == "list":
        disc = _discover_list(source)
    elif layout == "jorder":
        disc = _discover_jorder(source)
    else:
        r, c = _find_twin_dirs(source, rainy_dir, clean_dir)
        if r is None:
            raise DataError(
                f"{source}: no rainy sub-folder (looked for {', '.join(RAINY_DIR_NAMES)})")
        if layout == "twin_folders":
            if c is None:
                raise DataError(
                    f"{source}: no clean sub-folder (looked for {', '.join(CLEAN_DIR_NAMES)})")
            disc = _discover_twin(source, r, c)
        else:
            disc = _discover_rainy_subfolder(source, r)
    if not (disc.pairs or disc.unpaired_rainy or disc.unpaired_clean or disc.duplicates):
        raise DataError(f"{source}: no images found for layout {disc.layout}")
    disc.known = guess_known_set(source) if disc.layout != "list" else None
    return disc


def discover_splits(source, layout="auto", rainy_dir=None, clean_dir=None, depth=3):
    """Like :func:`discover`, but a dataset root with ``train/``/``test/`` gives one per split.

    Returns ``{split_name: Discovery}``; the key is ``"."`` when ``source`` itself holds pairs,
    else the relative folder (``train``, ``heavy/test``, ...). Sub-folders are searched up to
    ``depth`` levels down, without descending into folders that hold pairs.
    """
    source = os.fspath(source)
    if layout != "auto" or not os.path.isdir(source) or detect_layout(source, rainy_dir, clean_dir):
        return {".": discover(source, layout, rainy_dir, clean_dir)}
    if not _listdir(source):
        raise DataError(f"{source}: folder is empty")
    found = {}

    def walk(rel, level):
        for sub in _subdirs(os.path.join(source, rel)):
            sub_rel = os.path.join(rel, sub) if rel else sub
            full = os.path.join(source, sub_rel)
            if detect_layout(full, rainy_dir, clean_dir):
                found[sub_rel] = discover(full, "auto", rainy_dir, clean_dir)
            elif level < depth:
                walk(sub_rel, level + 1)

    walk("", 1)
    if not found:
        discover(source)  # raises the descriptive "no pairs found" error
    order = {s: i for i, s in enumerate(SPLIT_ORDER)}

    def sort_key(item):
        parts = item[0].split(os.sep)
        return [natural_key(p) for p in parts[:-1]], order.get(parts[-1].lower(), 99), parts[-1]

    return dict(sorted(found.items(), key=sort_key))
