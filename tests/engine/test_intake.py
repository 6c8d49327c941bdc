"""What deliveries start, and what they may not: the plan as labelled, stale and replayed labels,
refusals only where asked (at most one per issue per 10 minutes), the repository allow-list, and
hostile payloads of every handled event through the endpoint and the worker."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.run_state import RunStatus
from app.store.inbox import Inbox
from tests.engine.harness import REPO, autopack
from tests.engine.intake_world import IntakeWorld, intake_world
from tests.fakegithub.hooks import DeliveryRecord
from tests.fakegithub.scenario import FakeGitHub
from tests.hostile_payloads import Target, examples, hostile

LABELLED = "The reviewed plan.\n\n- [ ] Add the settings module\n"
SWAPPED = "A different plan.\n\n- [ ] Delete everything\n"
WRITE_ACCESS = "only people with write access"


def _labelled_delivery(sim: FakeGitHub, issue: int) -> DeliveryRecord:
    """The simulator's record of the `autopack:run` label being put on the issue."""
    return next(
        d
        for d in sim.deliveries
        if d.event == "issues"
        and d.action == "labeled"
        and d.payload["issue"]["number"] == issue
        and d.payload["label"]["name"] == "autopack:run"
    )


async def test_the_run_follows_the_plan_as_labelled_not_as_edited_since(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    sim = fakegithub
    async with autopack(sim, engine, tmp_path / "d") as h:
        # Autopack is away while the issue is labelled and then edited by a maintainer.
        url, sim.webhook_url = sim.webhook_url, None
        issue = await sim.open_issue(REPO, "Plan", LABELLED, user="alice")
        await sim.label_issue(REPO, issue, "autopack:run", sender="alice")
        await sim.edit_issue(REPO, issue, SWAPPED, sender="alice")
        sim.webhook_url = url
        await sim.redeliver(_labelled_delivery(sim, issue).guid)
        run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    strategy = env.state.strategy
    assert strategy is not None
    assert [phase.title for phase in strategy.phases] == ["Add the settings module"]
    assert env.memo.facts.plan_body == LABELLED
    assert env.memo.facts.labelled_by == "alice"


async def test_an_edit_without_write_access_cancels_the_run(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    sim = fakegithub
    async with autopack(sim, engine, tmp_path / "d") as h:
        # mallory may edit the issue she opened; alice (write) reviewed and labelled it.
        issue = await sim.open_issue(REPO, "Slow", "- [ ] Take your time [slow]\n", user="mallory")
        await sim.label_issue(REPO, issue, "autopack:run", sender="alice")

        async def building() -> bool:
            run = await h.run_of(issue)
            return run is not None and run.status == RunStatus.PHASE_EXECUTION.value

        await h.until(building)
        # A maintainer's edit changes nothing for the run under way.
        await sim.edit_issue(REPO, issue, "- [ ] Take your time [slow]\n\nThanks!", sender="alice")
        edit = sim.deliveries[-1]

        async def processed() -> bool:
            return await Inbox(h.engine).status_of(edit.guid) == "done"

        await h.until(processed)
        run = await h.run_of(issue)
        assert run is not None
        assert not run.terminal
        await sim.edit_issue(REPO, issue, SWAPPED, sender="mallory")
        run, env = await h.finished(issue)
        notice = await h.comment_containing(issue, "edited this issue's description")
    assert run.status == RunStatus.DONE_FAILED_CANCELLED.value
    assert "@mallory" in env.state.terminal_reason
    assert "label the issue `autopack:run` again" in env.state.terminal_reason
    assert "@mallory" in notice
    assert "A maintainer must review the description" in notice


def _edited_delivery(sim: FakeGitHub, issue: int) -> DeliveryRecord:
    """The simulator's record of the last edit of the issue's description."""
    return [
        d
        for d in sim.deliveries
        if (d.event, d.action) == ("issues", "edited") and d.payload["issue"]["number"] == issue
    ][-1]


async def _edited_while_away(sim: FakeGitHub, *edits: tuple[str, str]) -> int:
    """Autopack away: alice (write) labels mallory's issue, then each (text, editor) edit."""
    url, sim.webhook_url = sim.webhook_url, None
    issue = await sim.open_issue(REPO, "Plan", LABELLED, user="mallory")
    await sim.label_issue(REPO, issue, "autopack:run", sender="alice")
    for text, editor in edits:
        await sim.edit_issue(REPO, issue, text, sender=editor)
    sim.webhook_url = url
    return issue


async def test_an_edit_without_write_access_before_pickup_starts_nothing_and_says_so(
    fakegithub: FakeGitHub, engine: AsyncEngine
) -> None:
    sim = fakegithub
    async with intake_world(sim, engine) as world:
        issue = await _edited_while_away(sim, (SWAPPED, "mallory"))
        # The edit arrives first (no run to protect yet: nothing happens), then the label.
        await sim.redeliver(_edited_delivery(sim, issue).guid)
        await sim.redeliver(_labelled_delivery(sim, issue).guid)
        assert await world.drain() == 2
        assert await world.runs(issue) == []
        (notice,) = world.comments(issue)
    assert notice.startswith("Autopack did not start a run: @mallory edited this issue's")
    assert "only people with write access may change the plan of a run" in notice
    assert "label the issue `autopack:run` again" in notice


async def test_an_outsiders_edit_a_maintainer_made_again_before_pickup_starts_the_run(
    fakegithub: FakeGitHub, engine: AsyncEngine
) -> None:
    sim = fakegithub
    async with intake_world(sim, engine) as world:
        reviewed = SWAPPED + "\nReviewed.\n"
        issue = await _edited_while_away(sim, (SWAPPED, "mallory"), (reviewed, "alice"))
        await sim.redeliver(_labelled_delivery(sim, issue).guid)
        assert await world.drain() == 1
        (run,) = await world.runs(issue)
        assert world.comments(issue) == []
    assert world.memo(run).facts.plan_body == LABELLED  # the labelled text, whoever edited since


async def test_a_label_removed_or_an_issue_closed_before_pickup_starts_nothing(
    fakegithub: FakeGitHub, engine: AsyncEngine
) -> None:
    sim = fakegithub
    async with intake_world(sim, engine) as world:
        url, sim.webhook_url = sim.webhook_url, None
        unlabelled = await sim.open_issue(REPO, "Unlabelled", LABELLED, user="alice")
        await sim.label_issue(REPO, unlabelled, "autopack:run", sender="alice")
        await sim.unlabel_issue(REPO, unlabelled, "autopack:run", sender="alice")
        closed = await sim.open_issue(REPO, "Closed", LABELLED, user="alice")
        await sim.label_issue(REPO, closed, "autopack:run", sender="alice")
        await sim.close_issue(REPO, closed, sender="alice")
        sim.webhook_url = url
        for issue in (unlabelled, closed):
            # The labeled delivery arrives late (or is replayed): the issue has moved on.
            await sim.redeliver(_labelled_delivery(sim, issue).guid)
        assert await world.drain() == 2
        assert await world.runs(unlabelled) == []
        assert await world.runs(closed) == []
        assert await world.inbox.counts() == {"done": 2}


async def test_a_replayed_labelled_delivery_starts_no_second_run(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    sim = fakegithub
    async with autopack(sim, engine, tmp_path / "d") as h:
        issue = await h.start_run(LABELLED)
        first, env = await h.finished(issue)
        assert env.memo.facts.plan_body == LABELLED
        # The label is still on the open issue. The same signed body under a new delivery id
        # is stored, but that labelling already started a run.
        replay = await sim.deliver("issues", _labelled_delivery(sim, issue).payload)
        assert replay.status_code == 202

        async def processed() -> bool:
            return await Inbox(h.engine).status_of(replay.guid) == "done"

        await h.until(processed)
        assert [run.id for run in await h.store.issue_runs(REPO, issue)] == [first.id]
        # Labelling it again for real is a new delivery, and starts the next run.
        await sim.unlabel_issue(REPO, issue, "autopack:run", sender="alice")
        await sim.label_issue(REPO, issue, "autopack:run", sender="alice")

        async def second() -> bool:
            return len(await h.store.issue_runs(REPO, issue)) == 2

        await h.until(second)


async def test_refusals_only_where_asked_and_once_per_window(
    fakegithub: FakeGitHub, engine: AsyncEngine
) -> None:
    sim = fakegithub
    async with intake_world(sim, engine) as world:
        mine = await sim.open_issue(REPO, "Mine", LABELLED, user="mallory")
        # Closing or unlabelling with no run going on asks for nothing: no comment, no API call.
        await sim.close_issue(REPO, mine, sender="mallory")
        await world.drain()
        assert world.comments(mine) == []
        assert not sim.calls("GET", f"/repos/{REPO}/collaborators/mallory")
        # Asking twice in a row gets one answer.
        other = await sim.open_issue(REPO, "Other", LABELLED, user="mallory")
        await sim.label_issue(REPO, other, "autopack:run", sender="mallory")
        await sim.comment(REPO, other, "/autopack plan", sender="mallory")
        await sim.unlabel_issue(REPO, other, "autopack:run", sender="mallory")
        await sim.label_issue(REPO, other, "autopack:run", sender="mallory")
        await world.drain()
        refusals = [body for body in world.comments(other) if WRITE_ACCESS in body]
        assert len(refusals) == 1
        assert "@mallory" in refusals[0]
        assert await world.runs(other) == []
        assert set((await world.inbox.counts()).keys()) == {"done"}


async def test_cancelling_a_run_without_write_access_is_refused(
    fakegithub: FakeGitHub, engine: AsyncEngine
) -> None:
    sim = fakegithub
    async with intake_world(sim, engine) as world:
        issue = await sim.open_issue(REPO, "Run", LABELLED, user="mallory")
        await sim.label_issue(REPO, issue, "autopack:run", sender="alice")
        await sim.comment(REPO, issue, "/autopack cancel", sender="mallory")
        await world.drain()
        (run,) = await world.runs(issue)
        assert not run.terminal
        assert [WRITE_ACCESS in body for body in world.comments(issue)] == [False, True]


async def test_the_allow_list_holds_for_plans_and_runs(
    fakegithub: FakeGitHub, engine: AsyncEngine
) -> None:
    sim = fakegithub
    async with intake_world(sim, engine, allowed=("other-org/*",)) as world:
        issue = await sim.open_issue(REPO, "Plan", LABELLED, user="alice")
        await sim.comment(REPO, issue, "/autopack plan", sender="alice")
        await sim.label_issue(REPO, issue, "autopack:run", sender="alice")
        await world.drain()
        answers = [body for body in world.comments(issue) if body != "/autopack plan"]
        assert len(answers) == 1
        assert "not configured to work on this repository" in answers[0]
        assert await world.runs(issue) == []
        assert not sim.calls("GET", f"/repos/{REPO}/contents")  # no plan was compiled


@pytest.mark.parametrize(
    "names",
    [
        pytest.param({"installation_id": 987654}, id="unknown-installation"),
        pytest.param({"repository": "acme/nowhere"}, id="unknown-repository"),
        pytest.param({"issue": 4242}, id="unknown-issue"),
    ],
)
async def test_a_delivery_naming_what_github_does_not_know_is_done_not_retried(
    fakegithub: FakeGitHub, engine: AsyncEngine, names: dict[str, Any]
) -> None:
    async with intake_world(fakegithub, engine) as world:
        target = Target(**{"installation_id": world.installation_id, **names})
        name, labelled = examples(target)[0]
        status, delivery = await world.post(name, labelled)
        assert status == 202
        assert await world.drain() == 1
        assert await world.inbox.status_of(delivery) == "done"
        assert await world.store.list_runs() == []


@pytest.fixture
async def hostile_world(fakegithub: FakeGitHub, engine: AsyncEngine) -> AsyncIterator[IntakeWorld]:
    """One world for every example: issue 1 is open and labelled, no run yet."""
    async with intake_world(fakegithub, engine) as world:
        url, fakegithub.webhook_url = fakegithub.webhook_url, None
        issue = await fakegithub.open_issue(REPO, "Target", LABELLED, user="alice")
        await fakegithub.label_issue(REPO, issue, "autopack:run", sender="alice")
        fakegithub.webhook_url = url
        yield world


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_hostile_payloads_cost_a_4xx_or_end_processed_or_malformed(
    hostile_world: IntakeWorld, data: st.DataObject
) -> None:
    world = hostile_world
    target = Target(
        repository=REPO,
        installation_id=world.installation_id,
        app_id=world.sim.app.id,
        sender=data.draw(st.sampled_from(["alice", "mallory"])),
        issue=1,
    )
    name, example = data.draw(st.sampled_from(examples(target)))
    payload = data.draw(hostile(example))
    status, delivery = await world.post(name, payload)
    assert status < 500
    stored = await world.inbox.status_of(delivery)
    if status >= 400:
        assert stored is None
        event(f"{name}: {status}")
        return
    if stored is None:
        event(f"{name}: answered, not stored")
        return
    await world.drain()
    final = await world.inbox.status_of(delivery)
    event(f"{name}: {final}")
    assert final in ("done", "malformed"), json.dumps(payload)[:2000]
