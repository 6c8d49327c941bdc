"""report: Report and Finish bring the check run, the comment, the labels and the pull request up
to date; made once each (found again after a crash), edits coalesced, the end said once."""

from __future__ import annotations

from dataclasses import replace

from app.domain.effects import Finish, Report
from app.domain.events import BuilderFinished, BuilderOutcome, Finding
from app.domain.issue_record import Severity
from tests.domain.machine_fixtures import green_phase
from tests.engine.effects.conftest import BRANCH, REPO, RUN_ID, EffectWorld, Step
from tests.engine.recorded import writes

ISSUE = f"/repos/{REPO}/issues/7"
FIND = "check_name=Autopack&filter=all&per_page=100"
MARKER = f"{REPO}#7/{RUN_ID}"  # the check run's external_id: a "Retry run" click names its run


def autopack_runs(world: EffectWorld) -> list[tuple[str, str | None]]:
    """(head sha, conclusion) of every Autopack check run on the repository."""
    runs = world.sim.repo(REPO).check_runs
    return [(run.head_sha, run.conclusion) for run in runs if run.name == "Autopack"]


def comments(world: EffectWorld) -> list[str]:
    return [comment.body for comment in world.sim.repo(REPO).comments(7)]


def labels(world: EffectWorld) -> list[str]:
    return sorted(label.name for label in world.sim.repo(REPO).issues[7].labels)


async def reported(world: EffectWorld, phases: int = 1) -> tuple[Step, Step]:
    """The run building its first phase, and the same run after its first report."""
    step = await world.branched(world.strategy(tiers=(phases,)))
    first = await world.carry_out(step, Report)
    return step, Step(first.env, ())


async def test_the_first_report_creates_the_check_run_the_comment_and_the_label(
    world: EffectWorld,
) -> None:
    step = await world.branched(world.strategy())
    head = step.env.state.head_sha
    done = await world.carry_out(step, Report)
    assert [call.line for call in done.calls] == [
        (
            "GET",
            f"/repos/{REPO}/commits/{head}/check-runs?check_name=Autopack&filter=all&per_page=100",
        ),
        ("POST", f"/repos/{REPO}/check-runs"),
        ("GET", f"{ISSUE}/comments?per_page=100"),
        ("POST", f"{ISSUE}/comments"),
        ("POST", f"{ISSUE}/labels"),
    ]
    check, comment, label = (call.body for call in writes(done.calls))
    assert (check["name"], check["head_sha"], check["external_id"]) == ("Autopack", head, MARKER)
    assert check["status"] == "in_progress"
    assert comment["body"].startswith(f"<!-- autopack:run:{RUN_ID} -->\n")
    assert label == {"labels": ["autopack:running"]}
    assert done.event is None
    ids = done.env.memo.github
    assert (ids.check_run_sha, ids.label) == (head, "running")
    assert ids.check_run_id is not None
    assert ids.comment_id is not None
    assert done.env.memo.cadence.checked_status == "PHASE_EXECUTION"


async def test_carried_out_again_it_finds_what_it_made_and_makes_nothing_new(
    world: EffectWorld,
) -> None:
    step = await world.branched(world.strategy())
    done = await world.carry_out(step, Report)
    state = (autopack_runs(world), comments(world), labels(world))
    again = await world.carry_out(step, Report)  # the worker saved nothing of the first
    assert [call.method for call in writes(again.calls)] == ["PATCH", "PATCH", "POST"]
    assert (autopack_runs(world), comments(world), labels(world)) == state
    assert len(state[0]) == len(state[1]) == 1
    ids, first = again.env.memo.github, done.env.memo.github
    assert (ids.check_run_id, ids.comment_id) == (first.check_run_id, first.comment_id)


async def test_reports_in_the_same_state_are_coalesced_until_due(world: EffectWorld) -> None:
    step, after = await reported(world)
    report = step.effect(Report)
    world.clock.now += 1
    soon = await world.carry_out(Step(after.env, (report,)), Report)
    assert soon.calls == []
    world.clock.now += 10
    due = await world.carry_out(Step(soon.env, (report,)), Report)
    check_run, comment = after.env.memo.github.check_run_id, after.env.memo.github.comment_id
    assert [call.line for call in due.calls] == [
        ("PATCH", f"/repos/{REPO}/check-runs/{check_run}"),
        ("PATCH", f"/repos/{REPO}/issues/comments/{comment}"),
    ]


async def test_a_new_head_supersedes_the_older_check_run_and_opens_the_draft_pull(
    world: EffectWorld,
) -> None:
    _, after = await reported(world, phases=2)
    old = after.env.memo.github.check_run_id
    step = await world.landed(after)
    head = step.env.state.head_sha
    done = await world.carry_out(step, Report)
    assert [call.line for call in writes(done.calls)] == [
        ("PATCH", f"/repos/{REPO}/check-runs/{old}"),
        ("POST", f"/repos/{REPO}/check-runs"),
        ("POST", f"/repos/{REPO}/pulls"),
        ("PATCH", f"/repos/{REPO}/issues/comments/{after.env.memo.github.comment_id}"),
    ]
    superseded, _, pull, _ = (call.body for call in writes(done.calls))
    assert (superseded["conclusion"], superseded["output"]["title"]) == ("neutral", "Superseded")
    assert (pull["head"], pull["base"], pull["draft"]) == (BRANCH, "main", True)
    assert pull["title"] == "Autopack: Build the thing"
    assert done.env.memo.github.check_run_sha == head
    assert [conclusion for _, conclusion in autopack_runs(world)] == ["neutral", None]


async def test_the_end_completes_the_check_run_readies_the_pull_and_is_said_once(
    world: EffectWorld,
) -> None:
    _, after = await reported(world)
    finished = await world.landed(after)
    assert finished.env.state.status.value == "DONE_SUCCESS"
    done = await world.carry_out(finished, Report)
    lines = [call.line for call in writes(done.calls)]
    assert ("POST", "/graphql") in lines  # marked ready for review
    assert lines[-2:] == [
        ("POST", f"{ISSUE}/labels"),
        ("DELETE", f"{ISSUE}/labels/autopack:running"),
    ]
    final = f"/repos/{REPO}/check-runs/{done.env.memo.github.check_run_id}"
    (completed,) = [call.body for call in done.calls if call.line == ("PATCH", final)]
    assert (completed["conclusion"], "actions" in completed) == ("success", False)
    (pull,) = world.sim.repo(REPO).pulls
    assert pull.pull is not None
    assert not pull.pull.draft
    assert labels(world) == ["autopack:done"]
    # Finish after the terminal report: nothing left to say.
    finish = await world.carry_out(replace(finished, env=done.env), Finish)
    assert (finish.calls, finish.env) == ([], done.env)
    # The terminal report carried out again after a crash: nothing new on GitHub.
    state = (autopack_runs(world), comments(world), len(world.sim.repo(REPO).pulls))
    await world.carry_out(finished, Report)
    assert (autopack_runs(world), comments(world), len(world.sim.repo(REPO).pulls)) == state


async def test_the_end_folds_the_runs_issues_into_the_backlog_and_its_issue_once(
    world_db: EffectWorld,
) -> None:
    world = world_db
    step = await world.branched(world.strategy())
    sha = await world.sim.push(REPO, BRANCH, {"work/p1.txt": "p1\nTODO\n"})
    todo = Finding("builder:todo:p1", Severity.MINOR, "code_quality", "work/p1.txt", 2, "a TODO")
    built, gated, pushed, green, tagged = green_phase("p1", sha=sha)
    assert isinstance(built, BuilderFinished)
    finished = step.then(replace(built, issues=(todo,)), gated, pushed, green, tagged)
    done = await world.carry_out(finished, Report)
    (created,) = [call for call in done.calls if call.line == ("POST", f"/repos/{REPO}/issues")]
    assert created.body["title"] == "Autopack backlog"
    assert created.body["labels"] == ["autopack:backlog"]
    assert "builder:todo:p1" in created.body["body"]
    backlogs = world.ctx.services.backlogs
    assert backlogs is not None
    backlog = await backlogs.get(REPO)
    assert ([entry.issue_key for entry in backlog.entries], backlog.last_run) == (
        ["builder:todo:p1"],
        RUN_ID,
    )
    number = done.env.memo.github.backlog_issue
    assert number is not None
    # Carried out again: the run is folded in once, the backlog issue edited, not opened again.
    again = await world.carry_out(finished, Report)
    assert ("POST", f"/repos/{REPO}/issues") not in [call.line for call in again.calls]
    assert ("PATCH", f"/repos/{REPO}/issues/{number}") in [call.line for call in again.calls]
    assert await backlogs.get(REPO) == backlog


async def test_a_failed_run_ends_with_a_retry_button_and_no_pull(world: EffectWorld) -> None:
    strategy = world.strategy(max_builder_attempts=1, auditor_backend=None)
    step = await world.branched(strategy)
    failed = step.then(BuilderFinished("p1", 1, BuilderOutcome.FAILED))
    done = await world.carry_out(failed, Finish)
    (completed,) = [call.body for call in done.calls if call.method == "PATCH"]
    assert completed["conclusion"] == "failure"
    assert [action["identifier"] for action in completed["actions"]] == ["autopack-retry"]
    assert world.sim.repo(REPO).pulls == []
    assert labels(world) == ["autopack:failed"]
    assert done.env.memo.cadence.final_reported
    # Carried out again after a crash: the check run and the comment are found, not made again.
    state = (autopack_runs(world), comments(world), labels(world))
    again = await world.carry_out(failed, Finish)
    assert ("POST", f"/repos/{REPO}/check-runs") not in [call.line for call in again.calls]
    assert (autopack_runs(world), comments(world), labels(world)) == state
