"""Shared test fixtures: where the authors' reference results and the real data live, and the
end-of-run line that says which tests were skipped because they are missing.

Two tiers: `make test-fast` runs `pytest -m "not slow"`, `make test` runs everything. Marked
`slow` (in their files): the tests that run the authors' graphs, or the port on the authors'
batches, at their fixed shape 20x224x224; multi-process distribution; the SIGKILL-and-resume run.
"""
import collections
import os
import pathlib
import sys

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))  # the shared helpers (data_helpers, model_helpers) for every tier


def shared_path(env, default):
    """A folder of ../shared, overridable by an environment variable (CI has ../shared)."""
    return pathlib.Path(os.environ.get(env) or (REPO.parent / "shared" / default))


REFERENCE = shared_path("MENET_TF1_REFERENCE", "reference/authors_tf1")
GRAPHS = shared_path("MENET_AUTHORS_GRAPHS", "reference/authors_graphs")

# What the tests read from ../shared: {what it is: (its path, its place under ../shared)}.
SHARED = {
    "the authors' TF1 reference results": (REFERENCE, "reference/authors_tf1"),
    "the authors' variable lists": (REFERENCE.parent / "authors_variables", "reference/authors_variables"),
    "the authors' released graphs": (GRAPHS, "reference/authors_graphs"),
    "the MENET spec": (shared_path("MENET_SPEC", "reference/MENET_SPEC.md"), "reference/MENET_SPEC.md"),
    "the real data": (shared_path("MENET_REAL_DATA", "datasets/Rain100L"), "datasets/Rain100L"),
}
SHARED_VARIABLES = "MENET_TF1_REFERENCE, MENET_AUTHORS_GRAPHS, MENET_SPEC, MENET_REAL_DATA"


@pytest.fixture(scope="session")
def reference_dir():
    if not REFERENCE.is_dir():
        pytest.skip(f"authors' TF1 reference results not found at {REFERENCE}")
    return REFERENCE


@pytest.fixture(scope="session")
def released():
    """The authors' released models found in GRAPHS, by key ("light/ModelShallowNew")."""
    if not GRAPHS.is_dir():
        pytest.skip(f"authors' graphs not found at {GRAPHS}")
    from menet_tf.authors import graphs

    return {m.key: m for m in graphs.find_released(GRAPHS)}


def _spellings(path, default):
    """The ways a skip reason may spell a ../shared path (each test builds it its own way)."""
    return {str(path), os.path.normpath(os.path.abspath(path)), os.path.join("..", "shared", default)}


def _skip_reason(report):
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason


def _tier(report):
    """tests/<tier> of a report's test."""
    return "/".join(report.nodeid.split("::")[0].split("/")[:2])


def _grouped_skips(reports):
    """{what is missing (or the reason): [tiers]} for ../shared resources and for other skips."""
    spellings = [(what, _spellings(path, default)) for what, (path, default) in SHARED.items()]
    shared, other = collections.defaultdict(list), collections.defaultdict(list)
    for report in reports:
        reason = _skip_reason(report)
        what = next((w for w, paths in spellings if any(p in reason for p in paths)), None)
        (shared[what] if what else other[reason]).append(_tier(report))
    return shared, other


def _counted(tiers):
    return f"{len(tiers)}: {', '.join(sorted(set(tiers)))}"


@pytest.hookimpl(trylast=True)  # after --durations: the last lines before the counts
def pytest_terminal_summary(terminalreporter):
    """One line for the tests skipped for want of ../shared (which groups, how many, where),
    one line per other reason; instead of a row of silent `s`."""
    shared, other = _grouped_skips(terminalreporter.stats.get("skipped", []))
    if not shared and not other:
        terminalreporter.write_line("no test skipped")
    if shared:
        total = sum(len(t) for t in shared.values())
        groups = "; ".join(f"{what}, not at {SHARED[what][0]} ({_counted(tiers)})"
                           for what, tiers in shared.items())
        terminalreporter.write_line(
            f"{total} tests skipped for want of ../shared: {groups} (put shared/ beside the "
            f"checkout, or set {SHARED_VARIABLES})")
    for reason, tiers in other.items():
        terminalreporter.write_line(f"{len(tiers)} tests skipped: {reason} ({_counted(tiers)})")
