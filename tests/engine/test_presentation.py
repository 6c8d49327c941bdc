"""What a maintainer reads on GitHub after a run, driven end to end through the simulator: the
check run (summary, details, annotations), the issue comment, the pull request and the backlog
issue. Snapshots under tests/engine/snapshots/ (normalised: addresses, SHAs, times, durations);
`UPDATE_SNAPSHOTS=1` rewrites them."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.run_state import RunStatus
from app.github.backlog_issue import BACKLOG_LABEL
from tests.engine.harness import REPO, Harness, autopack
from tests.fakegithub.ci import CIScript
from tests.fakegithub.scenario import FakeGitHub
from tests.snapshots import assert_snapshot

SNAPSHOTS = Path(__file__).parent / "snapshots"
PLAN = """Make widgets better.

## Tier 1: groundwork
- [ ] Add the settings module [issue]
- [ ] Add the loader

## Tier 2: polish
- [ ] Describe it in the README {category=docs complexity=low mode=tweak_light}
"""
_NORMALISE = [
    (re.compile(r"http://127\.0\.0\.1:\d+"), "https://github.com"),
    (re.compile(r"\b[0-9a-f]{40}\b"), "<sha>"),
    (re.compile(r"\b[0-9a-f]{7}\b"), "<short>"),
    (re.compile(r"\d{4}\\?-\d\d-\d\d \d\d:\d\d UTC"), "<time>"),
    (re.compile(r"\b(\d+h )?(\d+m )?\d+s\b"), "<duration>"),
    (re.compile(r"/runs/\d+"), "/runs/<id>"),
]


def normalise(text: str | None) -> str:
    out = text or ""
    for pattern, replacement in _NORMALISE:
        out = pattern.sub(replacement, out)
    return out


def what_the_maintainer_reads(h: Harness, issue: int) -> dict[str, str]:
    repo = h.sim.repo(REPO)
    ours = [c for c in repo.check_runs if c.name == "Autopack"]
    final = ours[-1]
    (pull,) = repo.pulls
    (comment,) = [c.body for c in repo.comments(issue) if "autopack:run:" in c.body]
    backlog = [i for i in repo.issues.values() if BACKLOG_LABEL in {lab.name for lab in i.labels}]
    return {
        "check_summary": normalise(final.output.get("summary")),
        "check_text": normalise(final.output.get("text")),
        "comment": normalise(comment),
        "pull_body": normalise(pull.body),
        "backlog_issue": normalise(backlog[0].body if backlog else ""),
    }


async def test_a_green_run_reads_well_everywhere(
    fakegithub: FakeGitHub, sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    # The rendering does not depend on the database: SQLite only.
    async with autopack(fakegithub, sqlite_engine, tmp_path / "d") as h:
        issue = await h.start_run(PLAN)
        run, _ = await h.finished(issue)
        texts = what_the_maintainer_reads(h, issue)
    assert run.status == RunStatus.DONE_SUCCESS.value
    for name, text in texts.items():
        assert_snapshot(SNAPSHOTS, f"green_{name}", text)
    repo = fakegithub.repo(REPO)
    ours = [c for c in repo.check_runs if c.name == "Autopack"]
    # One check run per head: the older ones are completed as superseded, the last is current.
    assert [c.conclusion for c in ours[:-1]] == ["neutral"] * (len(ours) - 1)
    assert all(c.output.get("title") == "Superseded" for c in ours[:-1])
    assert ours[-1].head_sha == repo.ref(f"heads/{run.branch}")
    # The builder's issue is annotated on the file and line it named, once.
    assert [(a["path"], a["start_line"], a["annotation_level"]) for a in ours[-1].annotations] == [
        ("work/T1_P1.txt", 2, "warning")
    ]
    backlog = [i for i in repo.issues.values() if i.title == "Autopack backlog"]
    assert len(backlog) == 1
    # Coalesced: in a run this fast the comment is created, edited when the state changes in
    # kind (running, the pull request opened) and at the end, not at every phase.
    log = fakegithub.request_log
    comment_edits = [r for r in log if r.method == "PATCH" and "/issues/comments/" in r.path]
    assert 1 <= len(comment_edits) <= 3
    check_edits = [r for r in log if r.method == "PATCH" and "/check-runs/" in r.path]
    assert len(check_edits) == len(ours)  # each older head superseded once, the last finished


async def test_a_failed_run_says_why_and_where_the_incident_pack_is(
    fakegithub: FakeGitHub, sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    # The rendering does not depend on the database: SQLite only.
    async with autopack(fakegithub, sqlite_engine, tmp_path / "d", ci=CIScript.always_fail()) as h:
        issue = await h.start_run(PLAN)
        run, _ = await h.finished(issue)
        texts = what_the_maintainer_reads(h, issue)
    assert run.status == RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW.value
    backlog = texts.pop("backlog_issue")
    for name, text in texts.items():
        assert_snapshot(SNAPSHOTS, f"failed_{name}", text)
    # The backlog issue reads as after a green run (its snapshot); what this run adds is direct.
    assert "`builder:todo:T1_P1`" in backlog
    assert f"after run `{run.id}`" in backlog
    assert "INCIDENT.md" in texts["check_summary"]
    # The builder's feedback, shown in the details, carries what the failing checks said.
    assert "### tests (check run: failure)" in texts["check_text"]
    assert "Retry run" in texts["check_summary"]
    assert "stays a draft" in texts["pull_body"].lower()


async def test_a_second_run_updates_the_one_backlog_issue(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        first = await h.start_run("- [ ] Add the settings module [issue]\n")
        await h.finished(first)
        second = await h.start_run("- [ ] Add the settings module again [issue]\n")
        run, _ = await h.finished(second)
    repo = fakegithub.repo(REPO)
    (backlog,) = [i for i in repo.issues.values() if i.title == "Autopack backlog"]
    assert "builder:todo:T1_P1" in (backlog.body or "")
    assert run.id in (backlog.body or "")  # last seen in the second run
    assert "2 times" in (backlog.body or "")


async def test_retry_run_on_a_failed_check_run_starts_a_new_run_for_the_issue(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        issue = await h.start_run("- [ ] Add the key [secret]\n")
        first, _ = await h.finished(issue)
        assert first.status == RunStatus.DONE_FAILED_POLICY_VIOLATION.value
        repo = fakegithub.repo(REPO)
        (failed,) = [c for c in repo.check_runs if c.conclusion == "failure"]
        await fakegithub.click_action(failed.id, "autopack-retry", sender="alice")

        async def second_run() -> bool:
            runs = await h.store.list_runs(repository=REPO)
            return any(r.issue_number == issue and r.run_number == 2 for r in runs)

        await h.until(second_run)
        second, _ = await h.finished(issue)
    assert second.run_number == 2
    assert second.id != first.id
    assert second.branch.endswith("run-2")


async def test_retry_by_someone_without_write_access_starts_nothing(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        issue = await h.start_run("- [ ] Add the key [secret]\n")
        await h.finished(issue)
        repo = fakegithub.repo(REPO)
        (failed,) = [c for c in repo.check_runs if c.conclusion == "failure"]
        await fakegithub.click_action(failed.id, "autopack-retry", sender="mallory")
        await h.comment_containing(issue, "only people with write access")
        runs = await h.store.list_runs(repository=REPO)
    assert [r.run_number for r in runs] == [1]
