"""The check run module: GitHub's limits enforced before sending, batching, coalescing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.triggers import RETRY_ACTION
from app.github.checks import (
    MAX_ANNOTATION_BYTES,
    MAX_TEXT,
    MAX_TITLE,
    RETRY,
    Annotation,
    CheckAction,
    CheckRunOutput,
    annotation_batches,
    create_check_run,
    find_check_run,
    fit_output,
    truncate_bytes,
    truncate_chars,
    update_check_run,
)
from app.github.client import GitHubApp, InstallationClient
from tests.fakegithub.core import RequestRecord
from tests.fakegithub.scenario import FakeGitHub
from tests.fakegithub.state import CheckRun

REPO = "acme/widgets"
NAME = "Autopack"
EXTERNAL = "acme/widgets#1/run-1"


@dataclass
class Env:
    sim: FakeGitHub
    gh: InstallationClient
    sha: str

    def api_calls(self) -> list[RequestRecord]:
        return [r for r in self.sim.request_log if r.app == "autopack"]

    def run(self, check_run_id: int) -> CheckRun:
        return self.sim.check_run(check_run_id)[1]


@pytest.fixture
async def env(fakegithub: FakeGitHub) -> AsyncIterator[Env]:
    inst = fakegithub.install("acme")
    repo = fakegithub.create_repo(REPO, installation=inst)
    sha = repo.ref("heads/main")
    assert sha is not None
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(session, fakegithub.url, fakegithub.app.id, fakegithub.app.private_key_pem)
        yield Env(fakegithub, app.installation(inst.id), sha)


def annotations(n: int) -> tuple[Annotation, ...]:
    return tuple(
        Annotation("src/app.py", i + 1, i + 1, "warning", f"problem {i}") for i in range(n)
    )


def output(summary: str = "Working", n: int = 0, text: str | None = None) -> CheckRunOutput:
    return CheckRunOutput("Autopack run", summary, text, annotations(n))


# -- pure limits ---------------------------------------------------------------------------------


def test_fit_output_truncates_with_a_pointer_to_the_full_report() -> None:
    big = CheckRunOutput("T" * 300, "s" * 70_000, "t" * 100_000)
    fitted = fit_output(big, full_report="runs/run-1/report.md")
    assert len(fitted.title) == MAX_TITLE
    assert len(fitted.summary) == MAX_TEXT
    assert fitted.text is not None
    assert len(fitted.text) == MAX_TEXT
    assert fitted.summary.endswith("the full report is at runs/run-1/report.md.")
    assert fitted.text.startswith("t" * 1000)


def test_fit_output_leaves_small_output_alone() -> None:
    small = output("fine", 3, "details")
    assert fit_output(small) == small


def test_fit_output_fits_each_annotation() -> None:
    note = Annotation("a.py", 1, 2, "failure", "é" * 40_000, "x" * 300, "d" * 70_000)
    fitted = fit_output(CheckRunOutput("t", "s", None, (note,))).annotations[0]
    assert len(fitted.message.encode()) <= MAX_ANNOTATION_BYTES
    assert fitted.message.startswith("é" * 1000)  # cut between characters, not inside one
    assert fitted.title is not None
    assert len(fitted.title) == MAX_TITLE
    assert fitted.raw_details is not None
    assert len(fitted.raw_details.encode()) <= MAX_ANNOTATION_BYTES


@given(st.text(max_size=300), st.integers(min_value=1, max_value=200))
def test_truncation_never_exceeds_the_limit(text: str, limit: int) -> None:
    cut = truncate_chars(text, limit, "…see report")
    assert len(cut) <= limit
    assert cut == text or len(text) > limit
    assert len(truncate_bytes(text, limit + 3).encode()) <= limit + 3


@pytest.mark.parametrize(
    ("n", "sizes"), [(0, [0]), (1, [1]), (50, [50]), (51, [50, 1]), (120, [50, 50, 20])]
)
def test_annotation_batches(n: int, sizes: list[int]) -> None:
    assert [len(b) for b in annotation_batches(annotations(n))] == sizes


@pytest.mark.parametrize(
    ("label", "description", "identifier"),
    [
        ("L" * 21, "d", "i"),
        ("l", "D" * 41, "i"),
        ("l", "d", "I" * 21),
        ("", "d", "i"),
        ("l", "d", ""),
    ],
)
def test_actions_are_validated_on_construction(
    label: str, description: str, identifier: str
) -> None:
    with pytest.raises(ValueError, match="characters"):
        CheckAction(label, description, identifier)


def test_the_retry_action() -> None:
    assert RETRY.identifier == RETRY_ACTION
    assert RETRY.label == "Retry run"


@pytest.mark.parametrize(
    ("level", "start", "end", "match"),
    [("error", 1, 1, "level"), ("notice", 0, 1, "line range"), ("notice", 5, 4, "line range")],
)
def test_annotations_are_validated(level: str, start: int, end: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Annotation("a.py", start, end, level, "m")


# -- against the simulator -------------------------------------------------------------------------


async def test_create_sends_annotations_in_batches_of_fifty(env: Env) -> None:
    check_id = await create_check_run(
        env.gh,
        REPO,
        env.sha,
        NAME,
        EXTERNAL,
        output("s" * 80_000, 120),
        "in_progress",
        details_url="https://autopack.example/runs/1",
    )
    run = env.run(check_id)
    assert len(run.annotations) == 120
    assert [a["message"] for a in run.annotations] == [f"problem {i}" for i in range(120)]
    assert run.external_id == EXTERNAL
    assert run.status == "in_progress"
    assert len(run.output["summary"]) == MAX_TEXT
    assert [(r.method, r.status) for r in env.api_calls()] == [
        ("POST", 201),
        ("PATCH", 200),
        ("PATCH", 200),
    ]


async def test_create_with_a_few_annotations_is_one_call(env: Env) -> None:
    check_id = await create_check_run(env.gh, REPO, env.sha, NAME, EXTERNAL, output(n=3))
    assert len(env.run(check_id).annotations) == 3
    assert len(env.api_calls()) == 1


@pytest.mark.parametrize(
    ("status", "conclusion", "match"),
    [
        ("completed", None, "needs a conclusion"),
        ("waiting", None, "status"),
        ("completed", "great", "conclusion"),
        ("completed", "action_required", "details_url"),
    ],
)
async def test_create_refuses_bad_states_without_a_request(
    env: Env, status: str, conclusion: str | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        await create_check_run(
            env.gh, REPO, env.sha, NAME, EXTERNAL, output(), status, conclusion=conclusion
        )
    assert env.api_calls() == []


async def test_update_completes_with_the_retry_button(env: Env) -> None:
    check_id = await create_check_run(env.gh, REPO, env.sha, NAME, EXTERNAL, output())
    await update_check_run(
        env.gh,
        REPO,
        check_id,
        conclusion="failure",
        output=output("CI failed", 60),
        actions=(RETRY,),
    )
    run = env.run(check_id)
    assert (run.status, run.conclusion) == ("completed", "failure")
    assert run.actions == [RETRY.to_json()]
    assert run.output["summary"] == "CI failed"
    assert len(run.annotations) == 60
    assert [r.method for r in env.api_calls()] == ["POST", "PATCH", "PATCH"]
    await env.sim.click_action(check_id, RETRY_ACTION)  # the button exists on the run


async def test_update_refuses_too_many_actions_without_a_request(env: Env) -> None:
    actions = tuple(CheckAction(f"a{i}", "d", f"id-{i}") for i in range(4))
    with pytest.raises(ValueError, match="at most 3"):
        await update_check_run(env.gh, REPO, 1, actions=actions)
    with pytest.raises(ValueError, match="duplicate"):
        await update_check_run(env.gh, REPO, 1, actions=(RETRY, RETRY))
    with pytest.raises(ValueError, match="needs a conclusion"):
        await update_check_run(env.gh, REPO, 1, status="completed")
    await update_check_run(env.gh, REPO, 1)  # nothing to say: nothing sent
    assert env.api_calls() == []


async def test_find_check_run_by_external_id(env: Env) -> None:
    await create_check_run(env.gh, REPO, env.sha, NAME, "acme/widgets#1/run-0", output())
    wanted = await create_check_run(env.gh, REPO, env.sha, NAME, EXTERNAL, output())
    assert await find_check_run(env.gh, REPO, env.sha, NAME, EXTERNAL) == wanted
    assert await find_check_run(env.gh, REPO, env.sha, NAME, "acme/widgets#1/run-9") is None


# -- the reporter ---------------------------------------------------------------------------------
