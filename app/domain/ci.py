"""Reading CI: the check runs on a pushed commit decide, Autopack's own excluded.

Pure: check runs in, a verdict out. The profile says which checks are required: "changed" (every
check that reports on the commit), "all" (those plus every check the base commit had: a check that
has not reported yet keeps CI pending), or name globs (only matching checks decide).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase

PASSING = frozenset({"success", "neutral", "skipped"})


class CIState(StrEnum):
    """Where CI stands for one commit."""

    PENDING = "pending"
    GREEN = "green"
    RED = "red"
    NO_CHECKS = "no_checks"


@dataclass(frozen=True)
class CheckRunView:
    """What CI interpretation needs of a check run."""

    name: str
    app_id: int
    status: str  # queued | in_progress | completed
    conclusion: str | None
    id: int = 0
    suite_id: int | None = None


@dataclass(frozen=True)
class CIVerdict:
    """The decision over the required checks (sorted names in each group)."""

    state: CIState
    passed: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """One line a maintainer can read."""
        if self.state is CIState.NO_CHECKS:
            return "no checks reported"
        parts = [f"{len(self.passed)} passed"]
        if self.failed:
            parts.append("failed: " + ", ".join(self.failed))
        if self.pending:
            parts.append("waiting for: " + ", ".join(self.pending))
        return f"CI {self.state.value}: " + "; ".join(parts)


def latest_by_name(runs: Iterable[CheckRunView]) -> dict[str, CheckRunView]:
    """The newest run of each check name (a re-run supersedes the older one)."""
    latest: dict[str, CheckRunView] = {}
    for run in runs:
        current = latest.get(run.name)
        if current is None or run.id > current.id:
            latest[run.name] = run
    return latest


def interpret(
    runs: Iterable[CheckRunView],
    *,
    own_app_id: int,
    required: Sequence[str] = ("changed",),
    ignore: Sequence[str] = (),
    expected: Iterable[str] = (),
) -> CIVerdict:
    """Decide CI for one commit from its check runs."""
    reported = {
        name: run
        for name, run in latest_by_name(r for r in runs if r.app_id != own_app_id).items()
        if not any(fnmatchcase(name, pattern) for pattern in ignore)
    }
    if "all" in required:
        wanted = set(reported) | {
            name for name in expected if not any(fnmatchcase(name, p) for p in ignore)
        }
    elif "changed" in required:
        wanted = set(reported)
    else:
        wanted = {name for name in reported if any(fnmatchcase(name, p) for p in required)}
        wanted |= {name for name in required if not _is_glob(name)}
    if not wanted:
        return CIVerdict(CIState.NO_CHECKS)
    passed, failed, pending = [], [], []
    for name in sorted(wanted):
        run = reported.get(name)
        if run is None or run.status != "completed":
            pending.append(name)
        elif run.conclusion in PASSING:
            passed.append(name)
        else:
            failed.append(name)
    if failed:
        state = CIState.RED
    elif pending:
        state = CIState.PENDING
    else:
        state = CIState.GREEN
    return CIVerdict(state, tuple(passed), tuple(failed), tuple(pending))


def flaky(failed_before: Iterable[str], verdict: CIVerdict) -> tuple[str, ...]:
    """Checks that failed on an earlier try and passed on a re-run of the same commit."""
    return tuple(sorted(set(failed_before) & set(verdict.passed)))


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")
