"""What an effect handler works with: the process's services and one run's context.

`Services` is made once per worker process and shared by every run it drives; `RunContext` is
made once per claim of a run (the driver holds it while it drives the run) and opens the run's
clients and workspace only when a handler first asks for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

import aiohttp

from app.agents.auditor import CommandAuditor, OpenAIAuditor
from app.agents.command import CommandBuilder, CommandRunner
from app.agents.contract import Auditor, Builder
from app.agents.openai_backend import ChatClient, OpenAIBuilder
from app.agents.sandbox import SandboxHost
from app.agents.workspace import TarballSource, Workspace
from app.config import BuilderProfile, Settings
from app.domain.events import Event
from app.engine.envelope import Envelope
from app.engine.memo import Memo
from app.github.client import GitHubApp, InstallationClient
from app.github.commits import GovernedWriter, RefPolicy
from app.store.backlogs import BacklogStore
from app.store.evidence import EvidenceStore
from app.store.progress import ProgressStore
from app.store.runs import RunRecord

Clock = Callable[[], float]


def wall_clock() -> float:
    """Now, in epoch seconds."""
    return datetime.now(UTC).timestamp()


@dataclass(frozen=True)
class Services:
    """The collaborators every run of a worker process shares."""

    settings: Settings
    app: GitHubApp
    session: aiohttp.ClientSession
    sandbox: SandboxHost
    backlogs: BacklogStore | None = None
    progress: ProgressStore | None = None
    evidence: EvidenceStore | None = None
    clock: Clock = wall_clock

    def builder(self, name: str, profile: BuilderProfile) -> Builder:
        """The coding agent of an operator profile (`name` as the operator wrote it)."""
        if profile.backend == "command":
            return CommandBuilder(self._runner(name, profile))
        return OpenAIBuilder(ChatClient(profile, self.session), profile)

    def auditor(self, name: str, profile: BuilderProfile) -> Auditor:
        """The reviewer of an operator profile."""
        if profile.backend == "command":
            return CommandAuditor(self._runner(name, profile))
        return OpenAIAuditor(ChatClient(profile, self.session), profile)

    def _runner(self, name: str, profile: BuilderProfile) -> CommandRunner:
        scratch = self.settings.data_dir / "scratch"
        return CommandRunner(profile, scratch_root=scratch, sandbox=self.sandbox, name=name)


@dataclass
class RunContext:
    """One run, as a handler of its effects sees it (made once per claim)."""

    services: Services
    record: RunRecord

    @property
    def settings(self) -> Settings:
        """The service's settings."""
        return self.services.settings

    def now(self) -> float:
        """The runs' clock (epoch seconds)."""
        return self.services.clock()

    @cached_property
    def gh(self) -> InstallationClient:
        """The API client acting as the run's installation."""
        return self.services.app.installation(self.record.installation_id)

    @cached_property
    def workspace(self) -> Workspace:
        """The run's workspace (reading its manifest from disk, so opened only when used)."""
        services, record = self.services, self.record
        source = TarballSource.from_app(
            services.app,
            services.session,
            record.installation_id,
            record.repository,
            services.settings.retry_backoff_seconds,
        )
        return Workspace.for_run(services.settings.data_dir, record.id, source)

    def writer(self, memo: Memo) -> GovernedWriter:
        """The governed write path, refusing the default and protected branches the notes name
        (unknown before the branch is created: then only the integration prefix is writable)."""
        policy = RefPolicy(
            default_branch=memo.facts.default_branch or "\0unknown",
            prefix=self.settings.operator.integration_branch_prefix,
            protected=frozenset(memo.facts.protected),
        )
        return GovernedWriter(self.gh, self.record.repository, policy)


# What an effect handler returns: the run's envelope (with any new notes) and the event the
# effect produced, if any (queued for the machine under the effect's key).
Outcome = tuple[Envelope, Event | None]
