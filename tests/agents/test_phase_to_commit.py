"""From a phase spec to a commit on an integration branch, with every real part: the simulator's
tarball and git API, the workspace, each builder backend, the gate and the governed write path."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from app.agents.auditor import CommandAuditor
from app.agents.command import CommandBuilder, CommandRunner
from app.agents.contract import AuditRequest, Builder, PhaseSpec
from app.agents.files import ToolError, apply_patch
from app.agents.openai_backend import ChatClient, OpenAIBuilder
from app.agents.workspace import TarballSource, Workspace
from app.config import BuilderProfile
from app.domain.effects import BudgetsLeft
from app.domain.events import AuditorVerdict, BuilderOutcome
from app.domain.gate import Decision, GatePolicy, GateVerdict, evaluate
from app.github.client import GitHubApp
from app.github.commits import Attempt, GovernedWriter, PushResult, RefPolicy, parse_trailers
from tests.agents.fake_openai import FakeChat, completion, tool_call
from tests.fakegithub.scenario import FakeGitHub
from tests.sandboxing import read_only_paths, sandbox_host

REPO = "acme/widgets"
BRANCH = "autopack/issue-7-run-1"
SCRIPTS = Path(__file__).parent / "scripts"
FILES = {"README.md": "# widgets\n", "src/app.py": "print('hi')\n"}


def spec(attempt: int = 1) -> PhaseSpec:
    return PhaseSpec(
        run_id="run-1",
        phase_id="T1.P1",
        tier_id="T1",
        title="Add the feature module",
        description="Create src/feature.py.",
        task_category="feature",
        complexity="low",
        builder_mode="scaffolding_heavy",
        attempt=attempt,
        budgets_left=BudgetsLeft(
            tokens=50_000, builder_attempts=2, auditor_attempts=0, seconds=600
        ),
    )


@dataclass
class Rig:
    sim: FakeGitHub
    session: aiohttp.ClientSession
    writer: GovernedWriter
    workspace: Workspace
    scratch: Path
    base: str

    async def attempt(
        self, builder: Builder, number: int = 1
    ) -> tuple[BuilderOutcome, GateVerdict | None, PushResult | None]:
        """One attempt: builder, change, gate, push; reset the tree when it fails."""
        head = await self.writer.branch_head(BRANCH)
        assert head is not None
        await self.workspace.ensure(head.commit_sha)
        result = await builder.run(spec(number), self.workspace.tree)
        if result.outcome is not BuilderOutcome.OK:
            await asyncio.to_thread(self.workspace.reset)
            return result.outcome, None, None
        change = await asyncio.to_thread(self.workspace.compute_change)
        verdict = evaluate(change, GatePolicy.for_mode("scaffolding_heavy"))
        if verdict.decision is not Decision.PASS:
            await asyncio.to_thread(self.workspace.reset)
            return result.outcome, verdict, None
        pushed = await self.writer.push(
            BRANCH,
            change,
            expected_head=head.commit_sha,
            base_tree=head.tree_sha,
            message=f"{spec().phase_id}: {spec().title}",
            attempt=Attempt("run-1", "T1.P1", number),
        )
        await asyncio.to_thread(self.workspace.advance, pushed.commit_sha)
        return result.outcome, verdict, pushed


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
        source = TarballSource.from_app(app, session, inst.id, REPO)
        workspace = Workspace.for_run(tmp_path / "data", "run-1", source)
        yield Rig(fakegithub, session, writer, workspace, tmp_path / "scratch", base)


def command_builder(rig: Rig, mode: str) -> CommandBuilder:
    return CommandBuilder(command_runner(rig, "builder.py", mode))


def command_runner(rig: Rig, script: str, mode: str) -> CommandRunner:
    profile = BuilderProfile(
        backend="command",
        command=[sys.executable, str(SCRIPTS / script), mode],
        read_only=read_only_paths(),
    )
    host = sandbox_host(rig.scratch.parent / "data")  # the data directory of the rig
    return CommandRunner(profile, scratch_root=rig.scratch, sandbox=host)


def assert_main_untouched(rig: Rig) -> None:
    assert rig.sim.repo(REPO).ref("heads/main") == rig.base
    assert rig.sim.repo(REPO).files("heads/main") == {k: v.encode() for k, v in FILES.items()}


async def test_command_builder_phase_lands_as_one_commit(rig: Rig) -> None:
    outcome, verdict, pushed = await rig.attempt(command_builder(rig, "edit"))
    assert outcome is BuilderOutcome.OK
    assert verdict is not None
    assert verdict.decision is Decision.PASS
    assert pushed is not None
    repo = rig.sim.repo(REPO)
    assert repo.ref(f"heads/{BRANCH}") == pushed.commit_sha
    assert repo.files(f"heads/{BRANCH}")["src/feature.py"] == b"# Add the feature module\n"
    commit = repo.git.get_commit(pushed.commit_sha)
    assert commit.parents == (rig.base,)
    assert parse_trailers(commit.message)["Autopack-Phase"] == "T1.P1"
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
        builder = OpenAIBuilder(ChatClient(profile, rig.session, environ={}), profile)
        outcome, _, pushed = await rig.attempt(builder)
    assert outcome is BuilderOutcome.OK
    assert pushed is not None
    files = rig.sim.repo(REPO).files(f"heads/{BRANCH}")
    assert files["src/feature.py"] == b"FEATURE = True\n"
    assert_main_untouched(rig)


@pytest.mark.parametrize(
    ("mode", "decision"),
    [("symlink", Decision.FAIL_POLICY), ("noop", Decision.RETRY)],
)
async def test_refused_changes_push_nothing_and_leave_a_clean_tree(
    rig: Rig, mode: str, decision: Decision
) -> None:
    before = rig.sim.repo(REPO).ref(f"heads/{BRANCH}")
    _, verdict, pushed = await rig.attempt(command_builder(rig, mode))
    assert pushed is None
    assert verdict is not None
    assert verdict.decision is decision
    assert rig.sim.repo(REPO).ref(f"heads/{BRANCH}") == before
    assert rig.workspace.compute_change().empty
    assert_main_untouched(rig)
    # The workspace is still usable: the next attempt lands.
    _, _, landed = await rig.attempt(command_builder(rig, "edit"), number=2)
    assert landed is not None


async def test_auditor_patch_goes_through_the_same_gate_and_write_path(rig: Rig) -> None:
    await rig.attempt(command_builder(rig, "edit"))
    auditor = CommandAuditor(command_runner(rig, "auditor.py", "patch"))
    verdict = await auditor.review(AuditRequest(spec(), diff="..."), rig.workspace.tree)
    assert verdict.verdict is AuditorVerdict.PATCH
    assert verdict.patch is not None
    apply_patch(rig.workspace.tree, {k: v for k, v in verdict.patch.items() if k != "junk.txt"})
    change = rig.workspace.compute_change()
    gate = evaluate(change, GatePolicy.for_mode("tweak_light"))
    assert gate.decision is Decision.PASS
    head = await rig.writer.branch_head(BRANCH)
    assert head is not None
    pushed = await rig.writer.push(
        BRANCH,
        change,
        expected_head=head.commit_sha,
        base_tree=head.tree_sha,
        message="auditor patch",
        attempt=Attempt("run-1", "T1.P1", 2),
    )
    assert rig.sim.repo(REPO).files(pushed.commit_sha)["src/app.py"] == b"print('fixed')\n"
    assert_main_untouched(rig)


def test_patches_cannot_escape_the_tree(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    with pytest.raises(ToolError, match=r"'\.\.' is not allowed"):
        apply_patch(tmp_path / "tree", {"ok.txt": "fine", "../evil.py": "x"})
    assert not (tmp_path / "evil.py").exists()
    assert not (tmp_path / "tree" / "ok.txt").exists()  # all or nothing
