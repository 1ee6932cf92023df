"""Checking pairs before anyone trains on them: every image readable, of the right kind and size,
rainy and clean alike; and the report ``menet-tf data check`` prints.

Discovery (which files pair up, in which layout) is :mod:`menet_tf.data.pairs`; this module asks
of each pair whether it can be used, and collects what cannot.
"""
import os
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from menet_tf.errors import DataError
from menet_tf.data.images import DataWarning, convert_to_rgb_png, inspect_image
from menet_tf.data.pairs import Discovery, discover, known_set


@dataclass
class CheckReport:
    """Result of :func:`check_dataset` for one folder (or split)."""

    discovery: Discovery
    bad: list = field(default_factory=list)        # (path, reason)
    converted: list = field(default_factory=list)  # (path, reason): usable with convert=True
    too_small: list = field(default_factory=list)  # (path, "WxH") smaller than the crop
    sizes: dict = field(default_factory=dict)      # {(width, height): number of pairs}
    good_pairs: int = 0

    @property
    def expected(self):
        return self.discovery.known.counts if self.discovery.known else ()

    @property
    def ok(self):
        d = self.discovery
        counts_ok = not self.expected or len(d.pairs) in self.expected
        return (counts_ok and not self.bad and not self.converted and not self.too_small
                and not d.unpaired_rainy
                and not d.unpaired_clean and not d.duplicates and self.good_pairs == len(d.pairs))


def _inspect_all(paths, full, progress):
    """Inspect files in a few threads (PIL decoding releases the GIL)."""
    def one(p):
        try:
            return p, inspect_image(p, full=full), None
        except DataError as err:
            return p, None, str(err)

    workers = min(8, (os.cpu_count() or 2) + 1)
    results = {}
    with ThreadPoolExecutor(workers) as pool:
        it = pool.map(one, paths)
        if progress and len(paths) > 50:
            from menet_tf.progress import bar as progress_bar
            it = progress_bar(it, total=len(paths), desc="checking images", unit="img", leave=False)
        for p, info, err in it:
            results[p] = (info, err)
    return results


def _pair_problems(pair, infos, convert, min_size):
    """Return (problem message or "", converted-file list) for one pair."""
    msgs, fixable = [], []
    sizes = []
    for role, path in (("rainy", pair.rainy), ("clean", pair.clean)):
        info, err = infos[path]
        if err:
            msgs.append(err)
            continue
        if info.problem:
            if convert:
                fixable.append(info)
            else:
                msgs.append(f"{path}: {info.problem}; pass convert=True (--convert) to convert "
                            f"it to RGB or lenient=True (--lenient) to skip the pair")
        sizes.append((info.height, info.width))
    if not msgs and len(sizes) == 2 and sizes[0] != sizes[1]:
        (h1, w1), (h2, w2) = sizes
        msgs.append(f"{pair.rainy} is {w1}x{h1} but its clean twin {pair.clean} is {w2}x{h2} "
                    f"(width x height): a pair must have one size")
    if not msgs and min_size and sizes:
        h, w = sizes[0]
        if h < min_size[0] or w < min_size[1]:
            msgs.append(f"{pair.rainy}: image is {w}x{h} (width x height), smaller than the "
                        f"{min_size[1]}x{min_size[0]} crop")
    return "\n".join(msgs), fixable


def validate_pairs(source, *, lenient=False, convert=False, full_check=True, min_size=None,
                   layout="auto", progress=False, convert_dir=None):
    """Discover and check every pair; return a list of usable :class:`Pair` with sizes.

    Strict (default): the first problem raises DataError naming the file, including rainy
    images without a clean twin (and vice versa). ``lenient=True`` skips bad or unpaired files
    with a :class:`DataWarning` instead. ``convert=True`` converts grayscale / RGBA / palette /
    16-bit images to 8-bit RGB copies in ``convert_dir`` (a temporary folder by default).
    ``min_size=(h, w)`` refuses images smaller than the crop. ``source`` may be a folder, a
    pair-list file, a list of (rainy, clean) paths or a :class:`Discovery`.
    """
    disc = source if isinstance(source, Discovery) else discover(source, layout)
    problems = []
    for path in disc.unpaired_rainy:
        problems.append(f"{path}: rainy image without its clean twin")
    for path in disc.unpaired_clean:
        problems.append(f"{path}: clean image without its rainy twin")
    for key, paths in disc.duplicates:
        problems.append(f"{paths[0]}: several files pair under the name {key!r}: "
                        f"{', '.join(paths)}")
    if problems and not lenient:
        raise DataError(_summarise(problems))
    for msg in problems:
        warnings.warn(f"skipped: {msg}", DataWarning, stacklevel=2)
    paths = sorted({p for pair in disc.pairs for p in (pair.rainy, pair.clean)})
    infos = _inspect_all(paths, full_check, progress)
    good = []
    for pair in disc.pairs:
        msg, fixable = _pair_problems(pair, infos, convert, min_size)
        if msg:
            if not lenient:
                raise DataError(msg)
            warnings.warn(f"skipped pair: {msg}", DataWarning, stacklevel=2)
            continue
        info = infos[pair.rainy][0]
        new = replace(pair, height=info.height, width=info.width)
        for fix in fixable:
            if convert_dir is None:
                convert_dir = tempfile.mkdtemp(prefix="menet-tf-converted-")
            out = convert_to_rgb_png(fix, convert_dir)
            new = replace(new, **{"rainy" if fix.path == pair.rainy else "clean": out})
        good.append(new)
    if not good:
        raise DataError(f"{disc.root}: no usable pairs (all {len(disc.pairs)} were skipped)")
    return good


def _summarise(problems, limit=5):
    head = problems[:limit]
    more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
    return "\n".join(head) + more


def check_dataset(discovery, full_check=True, progress=True, min_size=None, expect=None):
    """Inspect every file of a :class:`Discovery` without raising; return a :class:`CheckReport`.

    ``min_size=(h, w)`` also lists pairs smaller than the crop; ``expect`` (a known set name)
    overrides the set guessed from the folder name.
    """
    if expect:
        discovery.known = known_set(expect)
    disc = discovery
    paths = sorted({p for pair in disc.pairs for p in (pair.rainy, pair.clean)})
    infos = _inspect_all(paths, full_check, progress)
    report = CheckReport(disc)
    for pair in disc.pairs:
        bad_here = False
        sizes = []
        for path in (pair.rainy, pair.clean):
            info, err = infos[path]
            if err:
                report.bad.append((path, err.split(": ", 1)[-1]))
                bad_here = True
            else:
                if info.problem:
                    report.converted.append((path, info.problem))
                    bad_here = True
                sizes.append((info.height, info.width))
        if len(sizes) == 2 and sizes[0] != sizes[1]:
            (h1, w1), (h2, w2) = sizes
            report.bad.append((pair.rainy, f"size {w1}x{h1} differs from its clean twin "
                                           f"{os.path.basename(pair.clean)} ({w2}x{h2})"))
            bad_here = True
        elif sizes:
            h, w = sizes[0]
            report.sizes[(w, h)] = report.sizes.get((w, h), 0) + 1
            if min_size and (h < min_size[0] or w < min_size[1]):
                report.too_small.append((pair.rainy, f"{w}x{h}"))
                bad_here = True
        report.good_pairs += not bad_here
    return report
