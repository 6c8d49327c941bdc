"""Run labels: exactly one of running / done / failed follows the run, others left alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from app.github.client import GitHubApp, InstallationClient
from app.github.labels import RunLabel, run_label, set_run_labels
from tests.fakegithub.core import RequestRecord
from tests.fakegithub.scenario import FakeGitHub

REPO = "acme/widgets"


@dataclass
class Env:
    sim: FakeGitHub
    gh: InstallationClient
    issue: int

    def api_calls(self) -> list[RequestRecord]:
        return [r for r in self.sim.request_log if r.app == "autopack"]

    def labels(self) -> list[str]:
        return [label.name for label in self.sim.repo(REPO).issues[self.issue].labels]


@pytest.fixture
async def env(fakegithub: FakeGitHub) -> AsyncIterator[Env]:
    inst = fakegithub.install("acme")
    fakegithub.create_repo(REPO, installation=inst)
    number = await fakegithub.open_issue(REPO, "Add X", "please", user="alice")
    await fakegithub.label_issue(REPO, number, "autopack:run", sender="alice")
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(session, fakegithub.url, fakegithub.app.id, fakegithub.app.private_key_pem)
        yield Env(fakegithub, app.installation(inst.id), number)


@pytest.mark.parametrize(
    ("state", "label"),
    [
        ("running", RunLabel.RUNNING),
        ("done", RunLabel.DONE),
        ("failed", RunLabel.FAILED),
        ("autopack:failed", RunLabel.FAILED),
        (RunLabel.DONE, RunLabel.DONE),
    ],
)
def test_run_label(state: str, label: RunLabel) -> None:
    assert run_label(state) is label


@pytest.mark.parametrize("bad", ["", "cancelled", "autopack:run"])
def test_run_label_refuses_other_names(bad: str) -> None:
    with pytest.raises(ValueError, match="run label state"):
        run_label(bad)


async def test_labels_follow_the_run(env: Env) -> None:
    assert await set_run_labels(env.gh, REPO, env.issue, "running") == (
        "autopack:run",
        "autopack:running",
    )
    assert [r.method for r in env.api_calls()] == ["POST"]  # nothing to remove

    before = len(env.api_calls())
    await set_run_labels(env.gh, REPO, env.issue, RunLabel.FAILED)
    assert sorted(env.labels()) == ["autopack:failed", "autopack:run"]
    calls = env.api_calls()[before:]
    assert [r.method for r in calls] == ["POST", "DELETE"]
    assert calls[1].path == f"/repos/acme/widgets/issues/{env.issue}/labels/autopack:running"

    await set_run_labels(env.gh, REPO, env.issue, "failed")  # again: idempotent
    assert sorted(env.labels()) == ["autopack:failed", "autopack:run"]


async def test_labels_clean_up_every_stale_run_label(env: Env) -> None:
    for name in ("autopack:running", "autopack:failed", "bug"):
        await env.sim.label_issue(REPO, env.issue, name)
    before = len(env.api_calls())
    returned = await set_run_labels(env.gh, REPO, env.issue, "done")
    assert sorted(returned) == ["autopack:done", "autopack:run", "bug"]
    assert sorted(env.labels()) == ["autopack:done", "autopack:run", "bug"]
    assert [r.method for r in env.api_calls()[before:]] == ["POST", "DELETE", "DELETE"]


async def test_a_label_removed_meanwhile_is_fine(env: Env) -> None:
    await env.sim.label_issue(REPO, env.issue, "autopack:running")

    class RemovedMeanwhile:
        """The real client, but someone removes the label between our add and our delete."""

        def __init__(self, gh: InstallationClient) -> None:
            self._gh = gh

        async def delete(self, url: str, url_vars: Any = None) -> None:
            await self._gh.delete(url, url_vars)
            await self._gh.delete(url, url_vars)  # the second one answers 404

        def __getattr__(self, name: str) -> Any:
            return getattr(self._gh, name)

    await set_run_labels(RemovedMeanwhile(env.gh), REPO, env.issue, "done")
    assert sorted(env.labels()) == ["autopack:done", "autopack:run"]
    statuses = [r.status for r in env.api_calls() if r.method == "DELETE"]
    assert statuses == [200, 404]
