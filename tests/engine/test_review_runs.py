"""Whole runs that need a review: high-risk phases and weakened tests, with and without an auditor;
and builders whose output holds a secret, redacted wherever Autopack publishes it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.report import promotion
from app.domain.run_state import PhaseStatus, RunStatus
from app.github.commits import parse_trailers
from app.store.progress import ProgressStore
from app.web.readmodel import run_summary
from tests.engine.harness import REPO, autopack, ruleset
from tests.fakegithub.scenario import FakeGitHub
from tests.fakegithub.state import CheckRun, Issue

ROOT = Path(__file__).resolve().parents[2]
BUILDER = Path(__file__).parent / "scripts" / "weakening_builder.py"
WIDGET_TESTS = """\
import pytest


def test_one():
    assert 1 + 1 == 2


def test_two():
    assert 2 * 2 == 4
"""
LEGACY_TESTS = "def test_legacy():\n    assert True\n"
TEST_FILES = {"tests/test_widgets.py": WIDGET_TESTS, "tests/test_legacy.py": LEGACY_TESTS}
# Assembled at run time so no file in the repository holds a secret-shaped value.
TOKEN = "gh" + "p_" + "Leak9" * 7 + "X"


def readme_plan() -> str:
    """The example plan of README.md ("In the repository"), exactly as the README shows it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**In the repository**") :]
    match = re.search(r"```markdown\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return "\n".join(line.removeprefix("   ") for line in match.group(1).splitlines()) + "\n"


def ours(check_runs: list[CheckRun]) -> CheckRun:
    """Autopack's latest check run."""
    return [c for c in check_runs if c.name == "Autopack"][-1]


def text_of(check: CheckRun) -> str:
    output = check.output
    return "\n".join(str(output.get(key) or "") for key in ("title", "summary", "text"))


def the_pull(issues: dict[int, Issue]) -> Issue:
    (pull,) = [i for i in issues.values() if i.pull is not None]
    return pull


async def test_plan_preview_warns_about_every_phase_that_will_need_review(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        number = await fakegithub.open_issue(REPO, "Plan it", readme_plan(), user="alice")
        await fakegithub.comment(REPO, number, "/autopack plan", sender="alice")
        answer = await h.comment_containing(number, "Autopack plan")
    assert "security_auth / high / tweak_light | set in the plan" in answer
    assert "feature / medium / scaffolding_heavy | no rule matched" in answer
    assert "docs / low / tweak_light | the title mentions “readme”" in answer
    assert "**Needs review before push:** **no auditor is configured**" in answer
    (warning,) = [line for line in answer.splitlines() if line.startswith("- ⚠️")]
    assert warning.startswith("- ⚠️ T1.P2 Fix the login token refresh: security_auth changes")
    assert "pull request will stay a draft" in answer


async def test_the_readme_example_without_an_auditor_lands_and_asks_a_person(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        issue = await h.start_run(readme_plan(), title="Settings and login")
        run, env = await h.finished(issue)
    state = env.state
    assert run.status == RunStatus.DONE_SUCCESS.value, state.terminal_reason
    assert [p.status for p in state.phases] == [PhaseStatus.GREEN] * 3
    settings_phase, login, docs = state.phases
    assert login.needs_review == (
        "security_auth changes are not pushed without a review (auto_apply off)",
    )
    assert settings_phase.needs_review == docs.needs_review == ()
    assert not promotion(state).eligible
    assert run_summary(run)["needs_human_review"] == [
        {"phase_id": "T1.P2", "reason": login.needs_review[0]}
    ]
    repo = fakegithub.repo(REPO)
    branch = f"heads/{run.branch}"
    phases = [parse_trailers(c.message).get("Autopack-Phase") for c in repo.commits(branch)]
    assert phases[:4] == ["artefacts", "T2.P1", "T1.P2", "T1.P1"]  # every phase pushed
    assert "work/T1_P2.txt" in repo.files(branch)
    # The check run says so, in its title and its summary.
    check = ours(repo.check_runs)
    assert check.conclusion == "success"
    assert check.output["title"].endswith("· 3 of 3 phases green · 🙋 needs human review")
    summary = check.output["summary"]
    assert "### 🙋 Needs human review" in summary
    assert (
        "- `T1.P2` Fix the login token refresh: security\\_auth changes are not pushed without "
        "a review (auto\\_apply off)" in summary
    )
    assert "🚧 **Not eligible**, so the pull request stays a draft:" in summary
    assert "| ✅ 🙋 | `T1` | `T1.P2` Fix the login token refresh |" in summary
    # The pull request stays a draft, and says why.
    pull = the_pull(repo.issues)
    assert pull.pull is not None
    assert pull.pull.draft
    body = pull.body or ""
    assert "### Stays a draft" in body
    assert "- phase T1.P2 needs human review: pushed without the review it needed" in body
    assert "### 🙋 Needs human review" in body
    comment = next(c.body for c in repo.comments(issue) if f"autopack:run:{run.id}" in c.body)
    assert "**🙋 Needs human review:** `T1.P2`" in comment
    assert "(draft)" in comment
    assert "autopack:done" in {label.name for label in repo.issues[issue].labels}


async def test_weakened_tests_without_an_auditor_are_pushed_and_marked_with_file_and_line(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    plan = "- [ ] Tidy the widget module [w-skip]\n- [ ] Retire the old helper [w-unlink]\n"
    async with autopack(
        fakegithub, engine, tmp_path / "d", builder_script=BUILDER, extra_files=TEST_FILES
    ) as h:
        issue = await h.start_run(plan)
        run, env = await h.finished(issue)
    state = env.state
    assert run.status == RunStatus.DONE_SUCCESS.value, state.terminal_reason
    skipped, deleted = state.phases
    assert skipped.needs_review == ("the gate found test_skipped in tests/test_widgets.py:8",)
    assert deleted.needs_review == ("the gate found test_deleted in tests/test_legacy.py",)
    assert ("gate:test_skipped:tests/test_widgets.py", "major") in [
        (key, severity.value) for key, severity in state.issues
    ]
    files = fakegithub.repo(REPO).files(f"heads/{run.branch}")
    assert b"@pytest.mark.skip(reason='flaky')" in files["tests/test_widgets.py"]  # pushed
    assert "tests/test_legacy.py" not in files
    check = ours(fakegithub.repo(REPO).check_runs)
    summary = check.output["summary"]
    assert "the gate found test\\_skipped in tests/test\\_widgets.py:8" in summary
    (row,) = [line for line in summary.splitlines() if "gate:test_skipped" in line]
    assert row.startswith("| 🔴 major | `gate:test_skipped:tests/test_widgets.py` |")
    assert "`tests/test_widgets.py#L8`" in row
    # (a word joiner after "@" keeps GitHub from mentioning a user called "pytest")
    assert "skip marker added: @\u2060pytest.mark.skip(reason='flaky')" in row
    (note,) = [a for a in check.annotations if a["path"] == "tests/test_widgets.py"]
    assert (note["start_line"], note["annotation_level"]) == (8, "failure")
    pull = the_pull(fakegithub.repo(REPO).issues)
    assert pull.pull is not None
    assert pull.pull.draft
    assert "phases T1.P1, T1.P2 need human review" in (pull.body or "")


@pytest.mark.parametrize("verdict", ["approve", "reject"])
async def test_with_an_auditor_its_pre_push_review_decides(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path, verdict: str
) -> None:
    # The builder skips a test on its first attempt only: a rejection sends it back.
    async with autopack(
        fakegithub,
        engine,
        tmp_path / "d",
        builder_script=BUILDER,
        extra_files=TEST_FILES,
        ruleset_text=ruleset("auditor: reviewer\n"),
        builder_env={"TEST_AUDITOR_VERDICT": verdict},
    ) as h:
        issue = await h.start_run("- [ ] Tidy the widget module [w-skip-once]\n")
        run, env = await h.finished(issue)
        log = await h.store.events(run.id, limit=1000)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    (phase,) = env.state.phases
    assert phase.needs_review == ()  # a reviewer saw it: nothing left for a person
    # The reviewer was asked once, and told why.
    answers = [e.payload for e in log if e.kind == "event" and e.name == "AuditorFinished"]
    assert len(answers) == 1
    assert "told: Review needed: the gate found test_skipped in tests/test_widgets.py:8" in str(
        answers[0]
    )
    files = fakegithub.repo(REPO).files(f"heads/{run.branch}")
    pushed_skip = b"@pytest.mark.skip" in files["tests/test_widgets.py"]
    if verdict == "approve":
        assert phase.builder_attempts == 1
        assert pushed_skip  # the reviewer let it through
        pull = the_pull(fakegithub.repo(REPO).issues)
        assert pull.pull is not None
        assert not pull.pull.draft
    else:
        assert phase.builder_attempts == 2
        assert not pushed_skip  # never pushed; the second attempt did the work instead
        assert any("the reviewer answered reject" in entry for entry in phase.feedback)


async def test_a_secret_in_builder_output_is_redacted_wherever_it_is_published(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(
        fakegithub,
        engine,
        tmp_path / "d",
        builder_script=BUILDER,
        builder_env={"TEST_LEAK_TOKEN": TOKEN},
    ) as h:
        issue = await h.start_run("- [ ] Rotate the config [leak]\n")
        run, env = await h.finished(issue)
        log = await h.store.events(run.id, limit=1000)
        issues = await ProgressStore(engine).issues(run.id)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    # What the builder said really holds the token (so the checks below mean something) ...
    builder = [e.payload for e in log if e.kind == "event" and e.name == "BuilderFinished"]
    assert len(builder) == 2
    assert all(TOKEN in payload for payload in builder)
    assert any(TOKEN in i.message for i in issues)
    # ... and nothing Autopack published does.
    repo = fakegithub.repo(REPO)
    published: dict[str, str] = {}
    for check in repo.check_runs:
        published[f"check run {check.id}"] = text_of(check)
        for n, note in enumerate(check.annotations):
            published[f"annotation {check.id}/{n}"] = f"{note.get('title')} {note['message']}"
    for number, item in repo.issues.items():
        published[f"issue {number} body"] = item.body or ""
        for comment in repo.comments(number):
            published[f"comment {comment.id}"] = comment.body
    branch = repo.files(f"heads/{run.branch}")
    for path, content in branch.items():
        published[path] = content.decode("utf-8", "replace")
    leaked = [where for where, text in published.items() if TOKEN in text or TOKEN[:20] in text]
    assert leaked == []
    masked = ("ghp_**** (40 chars)", "ghp\\_\\*\\*\\*\\* (40 chars)")  # as is, or in markdown
    shown = [where for where, text in published.items() if any(m in text for m in masked)]
    artefacts = f".autonomous_runs/{run.id}/"
    assert f"{artefacts}run_issue_index.json" in shown  # the issue's evidence
    assert f"{artefacts}RUN_SUMMARY.md" in shown  # its summary and evidence
    assert any(where.startswith("check run") for where in shown)
    assert any(where.startswith("annotation") for where in shown)
    assert any(where.startswith("issue") for where in shown)  # the pull request's body
