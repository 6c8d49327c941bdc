"""Priority 6: the simulated CI app and its scripts."""

from __future__ import annotations

import pytest

from tests.fakegithub.ci import FLAKY, PASS, CIScript
from tests.fakegithub.receiver import Receiver
from tests.fakegithub.scenario import FakeGitHub
from tests.fakegithub.testkit import api, first_installation

REPO = "/repos/acme/widgets"


def _setup(sim: FakeGitHub, receiver: Receiver, script: CIScript | None) -> None:
    sim.install("acme")
    sim.create_repo("acme/widgets", ci=script)
    sim.webhook_url = receiver.url


def _conclusions(sim: FakeGitHub, sha: str) -> dict[str, str | None]:
    runs = [r for r in sim.repo("acme/widgets").check_runs if r.head_sha == sha]
    return {r.name: r.conclusion for r in runs}  # latest run per name wins


async def test_pass(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> None:
    _setup(fakegithub, webhook_receiver, CIScript.pass_())
    sha = await fakegithub.push("acme/widgets", "feature", {"a.txt": "1"})
    await fakegithub.idle()
    assert _conclusions(fakegithub, sha) == {"tests": "success", "lint": "success"}
    events = [e for e in webhook_receiver.events() if e[0].startswith("check")]
    assert events == [
        ("check_run", "created"),
        ("check_run", "created"),
        ("check_run", "completed"),
        ("check_run", "completed"),
        ("check_suite", "completed"),
    ]
    suite = webhook_receiver.received[-1].payload["check_suite"]
    assert (suite["app"]["slug"], suite["head_branch"], suite["conclusion"]) == (
        "fake-ci",
        "feature",
        "success",
    )
    assert webhook_receiver.received[-1].payload["sender"]["login"] == "fake-ci[bot]"


async def test_fail_times_then_pass(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> None:
    _setup(fakegithub, webhook_receiver, CIScript.fail_times(2, names=("tests",)))
    results = []
    for n in range(3):
        sha = await fakegithub.push("acme/widgets", "feature", {"a.txt": str(n)})
        await fakegithub.idle()
        results.append(_conclusions(fakegithub, sha)["tests"])
    assert results == ["failure", "failure", "success"]


async def test_always_fail(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> None:
    _setup(fakegithub, webhook_receiver, CIScript.always_fail())
    sha = await fakegithub.push("acme/widgets", "feature", {"a.txt": "1"})
    await fakegithub.idle()
    assert set(_conclusions(fakegithub, sha).values()) == {"failure"}


async def test_flaky_passes_on_rerequest_by_the_app(
    fakegithub: FakeGitHub, webhook_receiver: Receiver
) -> None:
    _setup(fakegithub, webhook_receiver, CIScript({"tests": FLAKY, "lint": PASS}))
    sha = await fakegithub.push("acme/widgets", "feature", {"a.txt": "1"})
    await fakegithub.idle()
    assert _conclusions(fakegithub, sha) == {"tests": "failure", "lint": "success"}
    async with api(fakegithub, first_installation(fakegithub)) as gh:
        _, suites = await gh.get(f"{REPO}/commits/{sha}/check-suites?app_id={fakegithub.ci_app.id}")
        suite_id = suites["check_suites"][0]["id"]
        status, body = await gh.post(f"{REPO}/check-suites/{suite_id}/rerequest")
        assert (status, body) == (201, {})
        await fakegithub.idle()
        _, latest = await gh.get(f"{REPO}/commits/{sha}/check-runs")
        _, every = await gh.get(f"{REPO}/commits/{sha}/check-runs?filter=all")
    assert {r["name"]: r["conclusion"] for r in latest["check_runs"]} == {
        "tests": "success",
        "lint": "success",
    }
    assert every["total_count"] == 4
    completed = [r.payload for r in webhook_receiver.received if r.event == "check_suite"]
    assert [p["check_suite"]["conclusion"] for p in completed] == ["failure", "success"]


async def test_none_never_starts(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> None:
    _setup(fakegithub, webhook_receiver, CIScript.none())
    await fakegithub.push("acme/widgets", "feature", {"a.txt": "1"})
    await fakegithub.idle()
    assert fakegithub.repo("acme/widgets").check_runs == []
    assert [e for e in webhook_receiver.events() if e[0].startswith("check")] == []


async def test_hang_stays_in_progress(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> None:
    _setup(fakegithub, webhook_receiver, CIScript.hang(names=("tests",)))
    sha = await fakegithub.push("acme/widgets", "feature", {"a.txt": "1"})
    await fakegithub.idle()
    runs = fakegithub.repo("acme/widgets").check_runs
    assert [(r.head_sha, r.status, r.conclusion) for r in runs] == [(sha, "in_progress", None)]
    assert [e for e in webhook_receiver.events() if e[0].startswith("check")] == [
        ("check_run", "created")
    ]


@pytest.mark.parametrize("how", ["create", "update"])
async def test_api_ref_moves_trigger_ci(
    fakegithub: FakeGitHub, webhook_receiver: Receiver, how: str
) -> None:
    _setup(fakegithub, webhook_receiver, CIScript.pass_(names=("tests",)))
    main = fakegithub.repo("acme/widgets").ref("heads/main")
    assert main is not None
    async with api(fakegithub, first_installation(fakegithub)) as gh:
        await gh.post(f"{REPO}/git/refs", {"ref": "refs/heads/autopack/run", "sha": main})
        target = main
        if how == "update":
            _, tree = await gh.post(
                f"{REPO}/git/trees",
                {"tree": [{"path": "x", "mode": "100644", "type": "blob", "content": "x"}]},
            )
            _, commit = await gh.post(
                f"{REPO}/git/commits", {"message": "m", "tree": tree["sha"], "parents": [main]}
            )
            target = commit["sha"]
            await gh.patch(f"{REPO}/git/refs/heads/autopack/run", {"sha": target})
    await fakegithub.idle()
    assert _conclusions(fakegithub, target) == {"tests": "success"}
