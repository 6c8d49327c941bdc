"""Reading CI: check runs and commit statuses on a pushed commit decide, Autopack's own excluded.

Pure: what GitHub reported in, a verdict out. Two sources count, each by name: check runs (the
newest run of each name, by id) and commit statuses (the newest status of each context, by id).
A name reported by both stands as its worse source. The profile says which names are required:
"changed" (every name reported on the commit), "all" (those plus every name the base commit had:
one that has not reported yet keeps CI pending), or name globs (only matching names decide; a
literal name that never reports keeps CI pending).

After a re-run request, a re-run check decides only through a run newer than the request (an id
above the floor recorded then): until such a run has completed the check is pending, never dropped
from the verdict. The absence of a result is never evidence of anything but waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import TypeVar

from app.domain.events import CIResult

PASSING = frozenset({"success", "neutral", "skipped"})
# Failing output handed on to the auditor and the incident pack is capped at this many characters.
OUTPUT_LIMIT = 8 * 1024
_SECTION_FLOOR = 512  # the least room one failing check's output gets within the cap
_TRUNCATED = "\n… (truncated)"


class CIState(StrEnum):
    """Where CI stands for one commit."""

    PENDING = "pending"
    GREEN = "green"
    RED = "red"
    NO_CHECKS = "no_checks"


class Outcome(StrEnum):
    """Where one required name stands (worst first when two sources report it)."""

    FAILED = "failed"
    PENDING = "pending"
    PASSED = "passed"


_SEVERITY = {Outcome.FAILED: 0, Outcome.PENDING: 1, Outcome.PASSED: 2}


@dataclass(frozen=True)
class CheckRunView:
    """What CI interpretation needs of a check run."""

    name: str
    app_id: int
    status: str  # queued | in_progress | completed (Actions also: waiting, requested, pending)
    conclusion: str | None
    id: int = 0
    suite_id: int | None = None
    app_slug: str = ""
    title: str = ""
    summary: str = ""
    text: str = ""
    details_url: str = ""


@dataclass(frozen=True)
class StatusView:
    """What CI interpretation needs of a commit status."""

    context: str
    state: str  # error | failure | pending | success
    id: int = 0
    description: str = ""
    target_url: str = ""


_Report = TypeVar("_Report", CheckRunView, StatusView)


@dataclass(frozen=True)
class Rerun:
    """A re-run request: the names re-run and the newest check run id seen before it."""

    names: tuple[str, ...]
    floor_id: int


@dataclass(frozen=True)
class CIVerdict:
    """The decision over the required names (sorted names in each group)."""

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


@dataclass(frozen=True)
class Reports:
    """The newest check run and status per name, Autopack's own and ignored names left out."""

    runs: dict[str, CheckRunView]
    statuses: dict[str, StatusView]

    @classmethod
    def collect(
        cls,
        runs: Iterable[CheckRunView],
        statuses: Iterable[StatusView] = (),
        *,
        own_app_id: int,
        ignore: Sequence[str] = (),
    ) -> Reports:
        """Group what GitHub reported by name."""
        theirs = (
            run for run in runs if run.app_id != own_app_id and not _matches(run.name, ignore)
        )
        counted = (status for status in statuses if not _matches(status.context, ignore))
        return cls(
            _newest(theirs, lambda run: run.name),
            _newest(counted, lambda status: status.context),
        )

    @property
    def names(self) -> set[str]:
        """Every name reported by either source."""
        return set(self.runs) | set(self.statuses)

    def outcome(self, name: str, rerun: Rerun | None = None) -> Outcome:
        """Where `name` stands; a name nothing reported is pending."""
        found: list[Outcome] = []
        run = self.runs.get(name)
        if run is not None:
            if rerun is not None and name in rerun.names and run.id <= rerun.floor_id:
                found.append(Outcome.PENDING)  # the re-run has not reported yet
            else:
                found.append(check_outcome(run))
        status = self.statuses.get(name)
        if status is not None:
            found.append(status_outcome(status))
        return min(found, key=_SEVERITY.__getitem__, default=Outcome.PENDING)


def _newest(items: Iterable[_Report], name: Callable[[_Report], str]) -> dict[str, _Report]:
    """The newest (highest id) item of each name: a re-run or a later status supersedes."""
    newest: dict[str, _Report] = {}
    for item in items:
        current = newest.get(name(item))
        if current is None or item.id > current.id:
            newest[name(item)] = item
    return newest


def check_outcome(run: CheckRunView) -> Outcome:
    """A check run: pending until completed, then passed only on a passing conclusion."""
    if run.status != "completed":
        return Outcome.PENDING
    return Outcome.PASSED if run.conclusion in PASSING else Outcome.FAILED


def status_outcome(status: StatusView) -> Outcome:
    """A commit status: success passes, pending waits, failure and error (or anything else) fail."""
    if status.state == "success":
        return Outcome.PASSED
    if status.state == "pending":
        return Outcome.PENDING
    return Outcome.FAILED


def required_names(
    reported: set[str],
    *,
    required: Sequence[str],
    ignore: Sequence[str] = (),
    expected: Iterable[str] = (),
) -> set[str]:
    """The names that decide: per `required`, from what was reported (and what is expected)."""
    if "all" in required:
        return reported | {name for name in expected if not _matches(name, ignore)}
    if "changed" in required:
        return set(reported)
    wanted = {name for name in reported if _matches(name, required)}
    return wanted | {name for name in required if not _is_glob(name)}


def interpret(
    runs: Iterable[CheckRunView],
    statuses: Iterable[StatusView] = (),
    *,
    own_app_id: int,
    required: Sequence[str] = ("changed",),
    ignore: Sequence[str] = (),
    expected: Iterable[str] = (),
    rerun: Rerun | None = None,
) -> CIVerdict:
    """Decide CI for one commit from its check runs and commit statuses."""
    reports = Reports.collect(runs, statuses, own_app_id=own_app_id, ignore=ignore)
    return judge(reports, required=required, ignore=ignore, expected=expected, rerun=rerun)


def judge(
    reports: Reports,
    *,
    required: Sequence[str] = ("changed",),
    ignore: Sequence[str] = (),
    expected: Iterable[str] = (),
    rerun: Rerun | None = None,
) -> CIVerdict:
    """The verdict over collected reports (see `interpret`)."""
    wanted = required_names(reports.names, required=required, ignore=ignore, expected=expected)
    if not wanted:
        return CIVerdict(CIState.NO_CHECKS)
    groups: dict[Outcome, list[str]] = {outcome: [] for outcome in Outcome}
    for name in sorted(wanted):
        groups[reports.outcome(name, rerun)].append(name)
    if groups[Outcome.FAILED]:
        state = CIState.RED
    elif groups[Outcome.PENDING]:
        state = CIState.PENDING
    else:
        state = CIState.GREEN
    return CIVerdict(
        state,
        tuple(groups[Outcome.PASSED]),
        tuple(groups[Outcome.FAILED]),
        tuple(groups[Outcome.PENDING]),
    )


def decide(
    verdict: CIVerdict, *, elapsed: float, start_timeout: float, finish_timeout: float
) -> CIResult | None:
    """The result a wait ends with now, or None to keep waiting.

    Red is declared only once nothing required is still pending, so that one re-run covers every
    failure; a wait that outlasts the finish timeout ends TIMED_OUT, whatever passed so far.
    """
    if verdict.state is CIState.GREEN:
        return CIResult.GREEN
    if verdict.state is CIState.RED and not verdict.pending:
        return CIResult.RED
    if verdict.state is CIState.NO_CHECKS and elapsed > start_timeout:
        return CIResult.NO_CI
    if elapsed > finish_timeout:
        return CIResult.TIMED_OUT
    return None


def flaky(failed_before: Iterable[str], verdict: CIVerdict) -> tuple[str, ...]:
    """Checks that failed on an earlier try and passed on a re-run of the same commit."""
    return tuple(sorted(set(failed_before) & set(verdict.passed)))


def failure_output(reports: Reports, names: Iterable[str], limit: int = OUTPUT_LIMIT) -> str:
    """What the failing checks and statuses said (title, summary, text, links), capped."""
    sections = [section for name in sorted(set(names)) if (section := _section(reports, name))]
    if not sections:
        return ""
    share = max(limit // len(sections), _SECTION_FLOOR)
    return _cap("\n\n".join(_cap(section, share) for section in sections), limit)


def _section(reports: Reports, name: str) -> str:
    parts: list[str] = []
    run = reports.runs.get(name)
    if run is not None and check_outcome(run) is Outcome.FAILED:
        parts.append(f"### {name} (check run: {run.conclusion})")
        parts.extend(text for text in (run.title, run.summary, run.text, run.details_url) if text)
    status = reports.statuses.get(name)
    if status is not None and status_outcome(status) is Outcome.FAILED:
        parts.append(f"### {name} (commit status: {status.state})")
        parts.extend(text for text in (status.description, status.target_url) if text)
    return "\n".join(parts)


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if limit <= len(_TRUNCATED):
        return text[:limit]
    return text[: limit - len(_TRUNCATED)] + _TRUNCATED


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")
