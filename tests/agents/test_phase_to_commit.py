"""From a phase to a commit on an integration branch through the engine's own effect handlers
(builder, gate, push; an auditor's patch) with every real part: the simulator's tarball and git
API, the workspace, each builder backend in its sandbox, the gate and the governed write path."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from app.agents.files import ToolError, apply_patch
from app.agents.workspace import TarballSource, Workspace
from app.config import BuilderProfile, OperatorConfig, Settings
from app.domain.effects import (
    BudgetsLeft,
    EvaluateGate,
    PushChange,
    RunAuditor,
    RunBuilder,
)
from app.domain.events import (
    AuditorFinished,
    AuditorVerdict,
    BranchReady,
    BuilderFinished,
    BuilderOutcome,
    Event,
    Finding,
    GateEvaluated,
    PhasesQueued,
    Pushed,
    StrategyReady,
)
from app.domain.gate import Decision
from app.domain.issue_record import Severity
from app.domain.machine import advance
from app.domain.run_state import AuditReason, RunState
from app.domain.taxonomy import AuditorProfile
from app.engine.context import RunContext, Services
from app.engine.effects.audit import run_auditor
from app.engine.effects.build import run_builder
from app.engine.effects.gate import evaluate_gate
from app.engine.effects.push import push_change
from app.engine.envelope import Envelope
from app.engine.memo import Memo, RunFacts
from app.github.client import GitHubApp
from app.github.commits import GovernedWriter, RefPolicy, parse_trailers
from tests.agents.fake_openai import FakeChat, completion, tool_call
from tests.domain.machine_fixtures import drive, make_strategy
from tests.engine.contexts import run_record
from tests.fakegithub.scenario import FakeGitHub
from tests.sandboxing import read_only_paths, sandbox_host

REPO = "acme/widgets"
RUN_ID = "run-1"
BRANCH = "autopack/issue-7-run-1"
SCRIPTS = Path(__file__).parent / "scripts"
FILES = {"README.md": "# widgets\n", "src/app.py": "print('hi')\n"}


@dataclass
class Rig:
    """A run at its first phase, driven through the engine's own effect handlers."""

    sim: FakeGitHub
    session: aiohttp.ClientSession
    app: GitHubApp
    installation_id: int
    data_dir: Path
    base: str

    @property
    def workspace(self) -> Workspace:
        return Workspace.for_run(self.data_dir, RUN_ID, self._source())

    def _source(self) -> TarballSource:
        return TarballSource.from_app(self.app, self.session, self.installation_id, REPO)

    def context(self, profile: BuilderProfile, auditor: BuilderProfile | None = None) -> RunContext:
        auditors = {"auditor": auditor} if auditor is not None else {}
        settings = Settings(
            app_id=self.sim.app.id,
            private_key=self.sim.app.private_key_pem,  # type: ignore[arg-type]
            github_api_url=self.sim.url,
            data_dir=self.data_dir,
            operator=OperatorConfig(builders={"default": profile}, auditors=auditors),
        )
        services = Services(settings, self.app, self.session, sandbox_host(self.data_dir))
        return RunContext(services, run_record(self.installation_id, REPO, RUN_ID))

    async def attempt(
        self, profile: BuilderProfile, number: int = 1
    ) -> tuple[BuilderFinished, GateEvaluated | None, Event | None]:
        """One attempt as the engine carries it out: builder, gate, push (the handlers reset
        the tree themselves: every attempt starts from the branch head)."""
        ctx = self.context(profile)
        head = self.sim.repo(REPO).ref(f"heads/{BRANCH}")
        assert head is not None
        env = _at_builder(head, number)
        effect = RunBuilder("p1", number, BudgetsLeft(50_000, 2, 0, 600))
        env, built = await run_builder(ctx, env, effect)
        assert isinstance(built, BuilderFinished)
        if built.outcome is not BuilderOutcome.OK:
            return built, None, None
        env, gated = await evaluate_gate(ctx, env, EvaluateGate("p1", number))
        assert isinstance(gated, GateEvaluated)
        if gated.decision is not Decision.PASS:
            return built, gated, None
        _, pushed = await push_change(ctx, env, PushChange(BRANCH, "p1", number, head))
        return built, gated, pushed


def _at_builder(head: str, attempt: int) -> Envelope:
    """A run whose phase p1 waits for builder attempt `attempt` on branch head `head`."""
    strategy = make_strategy(run_id=RUN_ID)
    events: list[Event] = [StrategyReady(strategy), BranchReady(head), PhasesQueued()]
    events += [BuilderFinished("p1", n, BuilderOutcome.FAILED) for n in range(1, attempt)]
    state, _ = drive(events, RunState(RUN_ID))
    facts = RunFacts(installation_id=1, repository=REPO, issue_number=7, default_branch="main")
    return Envelope(state, Memo(facts))


@pytest.fixture
async def rig(fakegithub: FakeGitHub, tmp_path: Path) -> AsyncIterator[Rig]:
    inst = fakegithub.install("acme")
    repo = fakegithub.create_repo(REPO, FILES, installation=inst)
    base = repo.ref("heads/main")
    assert base is not None
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(session, fakegithub.url, fakegithub.app.id, fakegithub.app.private_key_pem)
        writer = GovernedWriter(app.installation(inst.id), REPO, RefPolicy(default_branch="main"))
        await writer.create_branch(BRANCH, base)
        yield Rig(fakegithub, session, app, inst.id, tmp_path / "data", base)


def command_profile(script: str, mode: str) -> BuilderProfile:
    return BuilderProfile(
        backend="command",
        command=[sys.executable, str(SCRIPTS / script), mode],
        read_only=read_only_paths(),
    )


def assert_main_untouched(rig: Rig) -> None:
    assert rig.sim.repo(REPO).ref("heads/main") == rig.base
    assert rig.sim.repo(REPO).files("heads/main") == {k: v.encode() for k, v in FILES.items()}


def changed_files(rig: Rig, commit: str) -> set[str]:
    """The paths `commit` changed against its parent."""
    repo = rig.sim.repo(REPO)
    (parent,) = repo.git.get_commit(commit).parents
    new, old = repo.files(commit), repo.files(parent)
    return {path for path in new.keys() | old.keys() if new.get(path) != old.get(path)}


async def test_command_builder_phase_lands_as_one_commit(rig: Rig) -> None:
    built, gated, pushed = await rig.attempt(command_profile("builder.py", "edit"))
    assert built.outcome is BuilderOutcome.OK
    assert built.issues == (Finding("k1", Severity.MINOR, "style", message="e"),)
    assert gated is not None
    assert gated.decision is Decision.PASS
    assert isinstance(pushed, Pushed)
    repo = rig.sim.repo(REPO)
    assert repo.ref(f"heads/{BRANCH}") == pushed.commit_sha
    assert repo.files(f"heads/{BRANCH}")["src/feature.py"] == b"# Phase p1\n"
    commit = repo.git.get_commit(pushed.commit_sha)
    assert commit.parents == (rig.base,)
    assert parse_trailers(commit.message)["Autopack-Phase"] == "p1"
    assert_main_untouched(rig)
    # The workspace is the new head: nothing left to push, no download needed next time.
    assert rig.workspace.compute_change().empty
    downloads = len(rig.sim.calls("GET", f"/repos/{REPO}/tarball"))
    assert not await rig.workspace.ensure(pushed.commit_sha)
    assert len(rig.sim.calls("GET", f"/repos/{REPO}/tarball")) == downloads


async def test_openai_builder_phase_lands_as_one_commit(rig: Rig) -> None:
    script = [
        completion(tool_call("write_file", path="src/feature.py", content="FEATURE = True\n")),
        completion(tool_call("finish", summary="added", issues=[])),
    ]
    async with FakeChat(script) as fake:
        profile = BuilderProfile(backend="openai", base_url=fake.base_url, model="m")
        built, _, pushed = await rig.attempt(profile)
    assert built.outcome is BuilderOutcome.OK
    assert isinstance(pushed, Pushed)
    files = rig.sim.repo(REPO).files(f"heads/{BRANCH}")
    assert files["src/feature.py"] == b"FEATURE = True\n"
    assert_main_untouched(rig)


@pytest.mark.parametrize(
    ("mode", "decision"),
    [("symlink", Decision.FAIL_POLICY), ("noop", Decision.RETRY)],
)
async def test_a_refused_change_pushes_nothing_and_never_reaches_the_next_attempt(
    rig: Rig, mode: str, decision: Decision
) -> None:
    before = rig.sim.repo(REPO).ref(f"heads/{BRANCH}")
    _, gated, pushed = await rig.attempt(command_profile("builder.py", mode))
    assert pushed is None
    assert gated is not None
    assert gated.decision is decision
    assert rig.sim.repo(REPO).ref(f"heads/{BRANCH}") == before
    assert_main_untouched(rig)
    # The next attempt starts from the head: it lands with its own change and nothing else.
    _, _, landed = await rig.attempt(command_profile("builder.py", "edit"), number=2)
    assert isinstance(landed, Pushed)
    assert changed_files(rig, landed.commit_sha) == {"src/feature.py"}


async def test_an_auditor_patch_goes_through_the_same_gate_and_write_path(rig: Rig) -> None:
    # Builder attempts used up (one allowed, it failed): the auditor is called in and patches.
    head = rig.base
    strategy = make_strategy(run_id=RUN_ID, max_builder_attempts=1)
    state, _ = drive(
        [
            StrategyReady(strategy),
            BranchReady(head),
            PhasesQueued(),
            BuilderFinished("p1", 1, BuilderOutcome.FAILED),
        ],
        RunState(RUN_ID),
    )
    facts = RunFacts(installation_id=1, repository=REPO, issue_number=7, default_branch="main")
    env = Envelope(state, Memo(facts))
    ctx = rig.context(
        command_profile("builder.py", "edit"), auditor=command_profile("auditor.py", "patch_clean")
    )
    effect = RunAuditor(
        "p1",
        2,
        AuditorProfile.ORCHESTRATOR_REVIEW,
        AuditReason.BUILDER_FAILURES,
        BudgetsLeft(50_000, 0, 1, 600),
    )
    env, audited = await run_auditor(ctx, env, effect)
    assert isinstance(audited, AuditorFinished)
    assert audited.verdict is AuditorVerdict.PATCH
    env = env.advanced(advance(env.state, audited)[0], ())
    env, gated = await evaluate_gate(ctx, env, EvaluateGate("p1", 2, auditor_patch=True))
    assert isinstance(gated, GateEvaluated)
    assert gated.decision is Decision.PASS
    _, pushed = await push_change(ctx, env, PushChange(BRANCH, "p1", 2, head))
    assert isinstance(pushed, Pushed)
    assert rig.sim.repo(REPO).files(pushed.commit_sha)["src/app.py"] == b"print('fixed')\n"
    assert changed_files(rig, pushed.commit_sha) == {"src/app.py"}
    assert_main_untouched(rig)


def test_patches_cannot_escape_the_tree(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    with pytest.raises(ToolError, match=r"'\.\.' is not allowed"):
        apply_patch(tmp_path / "tree", {"ok.txt": "fine", "../evil.py": "x"})
    assert not (tmp_path / "evil.py").exists()
    assert not (tmp_path / "tree" / "ok.txt").exists()  # all or nothing
