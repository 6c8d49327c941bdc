"""What the effect handler tests share: one run of `acme/widgets` on the simulator, its RunContext
as a claim makes it (the App's real client, the run's workspace, sandboxed test agents, stores on
a real database), and the machine, driven to the state in which it asks for each effect.

Handlers are called through the effect table (`HANDLERS`), as the executor calls them, and the
calls they made are read from the simulator's request log (tests/engine/recorded.py).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import BuilderProfile, OperatorConfig, Settings
from app.domain.effects import CompileStrategy, Effect
from app.domain.events import BranchReady, Event, PhasesQueued, StrategyReady
from app.domain.machine import advance
from app.domain.run_state import RunState
from app.domain.strategy import Strategy
from app.engine.context import RunContext
from app.engine.effects import HANDLERS
from app.engine.envelope import Envelope
from app.engine.memo import Memo, RunFacts
from app.store.backlogs import BacklogStore
from app.store.evidence import EvidenceStore
from app.store.progress import ProgressStore
from app.store.runs import NewRun, RunStore
from tests.domain.machine_fixtures import green_phase, make_strategy
from tests.engine.contexts import Clock, run_context, run_record
from tests.engine.harness import BUILDER, FILES, PLANNER, RECORDING_AUDITOR
from tests.engine.recorded import Call, calls_since
from tests.fakegithub.scenario import FakeGitHub
from tests.sandboxing import read_only_paths, require_bwrap

REPO = "acme/widgets"
RUN_ID = "acme-widgets-7-1"  # tests/engine/contexts.py run_record
BRANCH = "autopack/issue-7-run-1"
E = TypeVar("E", bound=Effect)


@dataclass(frozen=True)
class Step:
    """The run after the machine took some events: its envelope and what it asked for last."""

    env: Envelope
    asked: tuple[Effect, ...]

    def effect(self, kind: type[E]) -> E:
        """The one effect of this type the machine asked for."""
        (found,) = [effect for effect in self.asked if isinstance(effect, kind)]
        return found

    def then(self, *events: Event) -> Step:
        """The machine takes `events`, in order."""
        state, asked = self.env.state, self.asked
        for event in events:
            state, asked = advance(state, event)
        return Step(self.env.advanced(state, ()), asked)


@dataclass
class Done:
    """An effect carried out: the envelope the handler returned, its event, the calls it made."""

    env: Envelope
    event: Event | None
    calls: list[Call]

    def step(self) -> Step:
        """The machine takes the event (the envelope keeps the handler's notes)."""
        assert self.event is not None
        return Step(self.env, ()).then(self.event)


@dataclass
class EffectWorld:
    sim: FakeGitHub
    ctx: RunContext
    clock: Clock
    installation_id: int

    async def carry_out(self, step: Step, kind: type[Effect]) -> Done:
        """Carry out the effect of `kind` the machine asked for, through the effect table."""
        effect = step.effect(kind)
        mark = len(self.sim.request_log)
        env, event = await HANDLERS[type(effect)](self.ctx, step.env, effect)
        return Done(env, event, calls_since(self.sim, mark))

    def moved(self) -> EffectWorld:
        """The same run claimed by another worker: a fresh context, its work tree gone."""
        self.ctx.workspace.destroy()
        ctx = RunContext(self.ctx.services, self.ctx.record)
        return replace(self, ctx=ctx)

    def start(self, plan: str = "- [ ] Phase one\n") -> Step:
        """A new run of issue #7 as labelled with `plan`: it asks to compile its strategy."""
        facts = RunFacts(
            self.installation_id,
            REPO,
            7,
            plan_title="Build the thing",
            plan_body=plan,
            labelled_by="alice",
        )
        return Step(Envelope(RunState(RUN_ID), Memo(facts)), (CompileStrategy(),))

    def plan_with(self, planner: str) -> None:
        """The operator names a planner profile from now on."""
        settings = self.ctx.settings
        operator = settings.operator.model_copy(update={"planner": planner})
        changed = settings.model_copy(update={"operator": operator})
        self.ctx = RunContext(replace(self.ctx.services, settings=changed), self.ctx.record)

    def strategy(self, **options: Any) -> Strategy:
        """The machine fixtures' strategy, for this run and repository."""
        made = make_strategy(run_id=RUN_ID, **options)
        return replace(made, repository=REPO, issue_number=7, branch=BRANCH)

    async def branched(self, strategy: Strategy) -> Step:
        """The strategy frozen, the branch made from main (with one commit of its own) and noted
        as the bootstrap effects note it, the phases queued: the machine asks for the first
        builder attempt."""
        head = await self.sim.push(REPO, BRANCH, {"NOTES.md": "integration\n"})
        step = self.start().then(StrategyReady(strategy), BranchReady(head), PhasesQueued())
        facts = step.env.memo.facts.compiled("Build the thing", "main").branched("main", ())
        tree = self.sim.repo(REPO).git.get_commit(head).tree  # as CreateBranch notes it
        return Step(step.env.put(facts).put(step.env.memo.tip.moved(tree)), step.asked)

    async def landed(self, step: Step) -> Step:
        """Phase p1 pushed (a commit on the branch, noted as PushChange notes it), green and
        tagged."""
        sha = await self.sim.push(REPO, BRANCH, {"work/p1.txt": "p1\n"})
        tree = self.sim.repo(REPO).git.get_commit(sha).tree
        env = step.env.put(step.env.memo.tip.moved(tree))
        return Step(env, step.asked).then(*green_phase("p1", sha=sha))

    def titled(self, strategy: Strategy, title: str) -> Strategy:
        """`strategy` with its first phase titled `title` (the test builder reads titles)."""
        first = replace(strategy.phases[0], title=title)
        return replace(strategy, phases=(first, *strategy.phases[1:]))

    def tree(self) -> Path:
        """The run's work tree."""
        return self.ctx.workspace.tree


def _profile(script: Path, **env: str) -> BuilderProfile:
    return BuilderProfile(
        backend="command",
        command=[sys.executable, str(script)],
        timeout_seconds=60,
        env=env,
        read_only=read_only_paths(),
    )


def settings_for(sim: FakeGitHub, data_dir: Path) -> Settings:
    """The service's settings against the simulator: the test builder as `default`, the
    recording auditor as `auditor` (rejects), `approver` and `patcher`, the test planner as
    `planner` (unused until `EffectWorld.plan_with`)."""
    return Settings(
        app_id=sim.app.id,
        private_key=sim.app.private_key_pem,  # type: ignore[arg-type]
        github_api_url=sim.url,
        data_dir=data_dir,
        retry_backoff_seconds=0.05,
        operator=OperatorConfig(
            builders={"default": _profile(BUILDER, TEST_BUILDER_TOKENS="10")},
            auditors={
                "auditor": _profile(RECORDING_AUDITOR),
                "approver": _profile(RECORDING_AUDITOR, AUDITOR_VERDICT="approve"),
                "patcher": _profile(RECORDING_AUDITOR, AUDITOR_VERDICT="patch"),
            },
            planners={"planner": _profile(PLANNER)},
        ),
    )


@asynccontextmanager
async def effect_world(
    sim: FakeGitHub, engine: AsyncEngine, data_dir: Path
) -> AsyncIterator[EffectWorld]:
    """`acme/widgets` (no CI unless a test sets `repo.ci`), and the run's context over `engine`."""
    require_bwrap()
    inst = sim.install("acme")
    sim.create_repo(REPO, dict(FILES), installation=inst, ci=None)
    sim.set_permission(REPO, "alice", "write")
    record = run_record(inst.id)
    while len(sim.repo(REPO).issues) < record.issue_number:  # the run's issue is #7
        await sim.open_issue(REPO, "Build the thing", "- [ ] Phase one\n", user="alice")
    await RunStore(engine).create_run(
        NewRun(
            id=record.id,
            installation_id=inst.id,
            repository=REPO,
            issue_number=record.issue_number,
            run_number=record.run_number,
            branch=record.branch,
            status=record.status,
            state=record.state,
        )
    )
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        bare = run_context(settings_for(sim, data_dir), session, inst.id, clock)
        services = replace(
            bare.services,
            backlogs=BacklogStore(engine),
            progress=ProgressStore(engine),
            evidence=EvidenceStore(engine),
        )
        yield EffectWorld(sim, RunContext(services, record), clock, inst.id)


@pytest.fixture
async def world(
    fakegithub: FakeGitHub, sqlite_engine: AsyncEngine, tmp_path: Path
) -> AsyncIterator[EffectWorld]:
    """The run on SQLite (what these tests are about is GitHub's side)."""
    async with effect_world(fakegithub, sqlite_engine, tmp_path / "data") as made:
        yield made


@pytest.fixture
async def world_db(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> AsyncIterator[EffectWorld]:
    """The run on each database, for tests of the rows a handler writes."""
    async with effect_world(fakegithub, engine, tmp_path / "data") as made:
        yield made
