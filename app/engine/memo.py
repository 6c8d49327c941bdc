"""The engine's notes on a run: small frozen records, each written by one part of the engine.

None of it changes what the machine decides; it is what the edge needs to carry out effects again
without repeating them (ids of what it created on GitHub), to coalesce reports, and to keep time.

| record | written by |
|---|---|
| `RunFacts` | the run intake (who labelled what) and the bootstrap effects (the repository) |
| `Clocks` | the bootstrap and builder effects; read by the CI watch for deadlines |
| `BranchTip` | the effects that push (the integration branch's tree, the final head) |
| `GitHubIds` | the report effects (check run, comment, pull request, backlog issue, label) |
| `ReportCadence` | the report effects (what each report last showed, and when) |
| `CIWatch` | the CI effects and the CI watch |

Stored as JSON through `dataclass_codec`; runs saved before the records existed (one flat
object) still load.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import Any, Self

from app.domain.dataclass_codec import decode_fields, encode_fields


@dataclass(frozen=True)
class RunFacts:
    """What the run is about: its issue, the plan as labelled, the repository's branches."""

    installation_id: int
    repository: str
    issue_number: int
    issue_title: str = ""
    # The plan as the maintainer labelled it (from the labeled delivery); None: read the issue.
    plan_title: str = ""
    plan_body: str | None = None
    labelled_by: str = ""
    label_digest: str = ""  # of the delivery that started the run: a replay of it starts nothing
    default_branch: str = ""
    protected: tuple[str, ...] = ()

    def compiled(self, issue_title: str, default_branch: str) -> Self:
        """The plan was compiled from the issue on a repository with this default branch."""
        return replace(self, issue_title=issue_title, default_branch=default_branch)

    def branched(self, default_branch: str, protected: tuple[str, ...]) -> Self:
        """The integration branch was made from `default_branch`; these branches are protected."""
        return replace(self, default_branch=default_branch, protected=protected)


@dataclass(frozen=True)
class Clocks:
    """When the run and the current phase started (epoch seconds; 0: not yet)."""

    started_at: float = 0.0
    phase_started_at: float = 0.0

    def run_started(self, at: float) -> Self:
        """The run's clock starts (once)."""
        return self if self.started_at else replace(self, started_at=at)

    def phase_started(self, at: float) -> Self:
        """A phase's first attempt starts: its clock starts."""
        return replace(self, phase_started_at=at)


@dataclass(frozen=True)
class BranchTip:
    """The integration branch's tree as last written, and its head after the final artefacts."""

    head_tree: str = ""
    final_head: str = ""

    def moved(self, tree: str) -> Self:
        """A commit landed with this tree."""
        return replace(self, head_tree=tree)

    def finished(self, tree: str, head: str) -> Self:
        """The final artefacts commit landed."""
        return replace(self, head_tree=tree, final_head=head)


@dataclass(frozen=True)
class GitHubIds:
    """What Autopack created on GitHub for the run: looked up again rather than made twice."""

    check_run_id: int | None = None
    check_run_sha: str = ""
    comment_id: int | None = None
    pull_number: int | None = None
    pull_node_id: str = ""
    pull_ready: bool = False
    backlog_issue: int | None = None
    label: str = ""

    def with_check_run(self, check_run_id: int, sha: str) -> Self:
        """The check run of head `sha`."""
        return replace(self, check_run_id=check_run_id, check_run_sha=sha)

    def with_comment(self, comment_id: int) -> Self:
        """The run's comment on its issue."""
        return replace(self, comment_id=comment_id)

    def with_pull(self, number: int, node_id: str) -> Self:
        """The run's pull request."""
        return replace(self, pull_number=number, pull_node_id=node_id)

    def pull_marked_ready(self) -> Self:
        """The pull request was marked ready for review."""
        return replace(self, pull_ready=True)

    def with_backlog_issue(self, number: int | None) -> Self:
        """The repository's backlog issue (None: there is none yet)."""
        return replace(self, backlog_issue=number)

    def labelled(self, label: str) -> Self:
        """The issue carries the run label for this state (running, done, failed)."""
        return replace(self, label=label)


@dataclass(frozen=True)
class ReportCadence:
    """What each report last showed and when: edits are coalesced (see effects/report.py)."""

    checked_status: str = ""
    checked_at: float = 0.0
    commented_status: str = ""
    commented_pull: int | None = None
    commented_at: float = 0.0
    pull_refreshed_landed: int = 0  # phases landed when the pull request body was refreshed
    pull_refreshed_at: float = 0.0
    final_reported: bool = False

    def checked(self, status: str, at: float) -> Self:
        """The check run showed `status` at `at`."""
        return replace(self, checked_status=status, checked_at=at)

    def commented(self, status: str, pull: int | None, at: float) -> Self:
        """The comment showed `status` and pull request `pull` at `at`."""
        return replace(self, commented_status=status, commented_pull=pull, commented_at=at)

    def pull_refreshed(self, landed: int, at: float) -> Self:
        """The pull request body showed `landed` phases at `at`."""
        return replace(self, pull_refreshed_landed=landed, pull_refreshed_at=at)

    def reported(self, final: bool) -> Self:
        """A report went out; `final` once the terminal state was shown."""
        return replace(self, final_reported=final)


@dataclass(frozen=True)
class CIWatch:
    """The commit whose CI the run waits for (kept, settled, after its verdict)."""

    sha: str
    phase_id: str
    rerun: int
    since: float  # epoch seconds the wait (or re-run) started
    failed_before: tuple[str, ...] = ()
    # After a re-run, runs of these checks with ids at or below floor_id are the old results.
    rerun_names: tuple[str, ...] = ()
    floor_id: int = 0
    # The phase's base commit and the check/status names seen on it (read when `all` is required).
    base_sha: str = ""
    expected: tuple[str, ...] = ()
    # Set with the verdict: the newest check run id the verdict saw (a re-run's floor).
    settled: bool = False
    seen_floor: int = 0
    # Re-runs GitHub answered "already running" (the workflow run had not concluded, or a
    # replay after a crash): asked for again at each look until a newer run shows.
    rerun_unconfirmed: tuple[str, ...] = ()

    def settle(self, seen_floor: int) -> Self:
        """The verdict was taken, having seen check runs up to `seen_floor`."""
        return replace(self, settled=True, seen_floor=seen_floor)


MemoRecord = RunFacts | Clocks | BranchTip | GitHubIds | ReportCadence | CIWatch


@dataclass(frozen=True)
class Memo:
    """The engine's notes on a run, one record per part of the engine that keeps notes."""

    facts: RunFacts
    clocks: Clocks = Clocks()
    tip: BranchTip = BranchTip()
    github: GitHubIds = GitHubIds()
    cadence: ReportCadence = ReportCadence()
    ci: CIWatch | None = None

    def put(self, record: MemoRecord) -> Memo:
        """A copy holding `record` in place of the record of its kind."""
        match record:
            case RunFacts():
                return replace(self, facts=record)
            case Clocks():
                return replace(self, clocks=record)
            case BranchTip():
                return replace(self, tip=record)
            case GitHubIds():
                return replace(self, github=record)
            case ReportCadence():
                return replace(self, cadence=record)
            case CIWatch():
                return replace(self, ci=record)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON."""
        return encode_fields(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Memo:
        """Inverse of `to_json`; also reads the flat notes of runs saved before the records."""
        if "facts" not in data:
            data = _from_flat(data)
        return decode_fields(cls, data)


def _from_flat(data: dict[str, Any]) -> dict[str, Any]:
    """The records' JSON from the one flat object older versions stored."""

    def take(record: type) -> dict[str, Any]:
        names = {f.name for f in dataclasses.fields(record)}
        return {name: value for name, value in data.items() if name in names}

    return {
        "facts": take(RunFacts),
        "clocks": take(Clocks),
        "tip": take(BranchTip),
        "github": take(GitHubIds),
        "cadence": take(ReportCadence),
        "ci": data.get("ci"),
    }
