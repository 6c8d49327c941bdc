"""Priority 6: the simulated CI app and its scripts."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakegithub.ci import FLAKY, PASS, CIScript, gone_after
from tests.fakegithub.receiver import Receiver
from tests.fakegithub.scenario import FakeGitHub
from tests.fakegithub.state import Repo
from tests.fakegithub.testkit import api, first_installation

REPO = "/repos/acme/widgets"


def _setup(sim: FakeGitHub, receiver: Receiver, script: CIScript | None) -> None:
    sim.install("acme")
    sim.create_repo("acme/widgets", ci=script)
    sim.webhook_url = receiver.url


def _conclusions(sim: FakeGitHub, sha: str) -> dict[str, str | None]:
    runs = [r for r in sim.repo("acme/widgets").check_runs if r.head_sha == sha]
    return {r.name: r.conclusion for r in runs}  # latest run per name wins


async def _actions_head(
    sim: FakeGitHub, receiver: Receiver, script: CIScript
) -> tuple[Repo, int, str]:
    """A pushed head checked by Actions `script`: the repo, its workflow run, the re-run URL."""
    _setup(sim, receiver, script.through("actions"))
    await sim.push("acme/widgets", "feature", {"a.txt": "1"})
    await sim.idle()
    repo = sim.repo("acme/widgets")
    (run_id,) = repo.workflow_runs
    return repo, run_id, f"{REPO}/actions/runs/{run_id}/rerun-failed-jobs"


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


async def test_statuses_only_ci_reports_pending_then_results(
    fakegithub: FakeGitHub, webhook_receiver: Receiver
) -> None:
    _setup(
        fakegithub, webhook_receiver, CIScript({"tests": FLAKY, "lint": PASS}).through("statuses")
    )
    sha = await fakegithub.push("acme/widgets", "feature", {"a.txt": "1"})
    await fakegithub.idle()
    repo = fakegithub.repo("acme/widgets")
    assert repo.check_runs == []
    assert [(s.context, s.state) for s in repo.statuses] == [
        ("tests", "pending"),
        ("lint", "pending"),
        ("tests", "failure"),
        ("lint", "success"),
    ]
    hooks = [r.payload for r in webhook_receiver.received if r.event == "status"]
    assert [(p["context"], p["state"], p["sha"]) for p in hooks][-2:] == [
        ("tests", "failure", sha),
        ("lint", "success", sha),
    ]
    assert hooks[-1]["branches"][0]["name"] == "feature"
    assert hooks[-1]["sender"]["login"] == "fake-ci[bot]"
    async with api(fakegithub, first_installation(fakegithub)) as gh:
        _, combined = await gh.get(f"{REPO}/commits/{sha}/status")
        _, every = await gh.get(f"{REPO}/commits/feature/statuses")
    assert (combined["state"], combined["total_count"]) == ("failure", 2)
    assert {s["context"]: s["state"] for s in combined["statuses"]} == {
        "tests": "failure",
        "lint": "success",
    }
    assert [s["state"] for s in every] == ["success", "failure", "pending", "pending"]


@pytest.mark.parametrize(
    ("states", "combined"),
    [
        ([], "pending"),
        (["success", "success"], "success"),
        (["success", "pending"], "pending"),
        (["pending", "error"], "failure"),
        (["success", "failure"], "failure"),
    ],
)
async def test_combined_state(
    fakegithub: FakeGitHub, webhook_receiver: Receiver, states: list[str], combined: str
) -> None:
    _setup(fakegithub, webhook_receiver, None)
    sha = fakegithub.repo("acme/widgets").ref("heads/main")
    async with api(fakegithub, first_installation(fakegithub)) as gh:
        for i, state in enumerate(states):
            code, _ = await gh.post(f"{REPO}/statuses/{sha}", {"state": state, "context": f"c{i}"})
            assert code == 201
        _, body = await gh.get(f"{REPO}/commits/{sha}/status")
    assert body["state"] == combined


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("statuses/{sha}", {"state": "done"}, 422, "is not one of"),
        ("statuses/{sha}", {}, 422, '"state" wasn\'t supplied.'),
        ("statuses/{sha}", {"state": "success", "context": 5}, 422, "is not a string"),
        ("statuses/" + "0" * 40, {"state": "success"}, 422, "No commit found for SHA"),
    ],
)
async def test_status_validation(
    fakegithub: FakeGitHub,
    webhook_receiver: Receiver,
    path: str,
    body: dict[str, object],
    status: int,
    message: str,
) -> None:
    _setup(fakegithub, webhook_receiver, None)
    sha = fakegithub.repo("acme/widgets").ref("heads/main")
    async with api(fakegithub, first_installation(fakegithub)) as gh:
        code, answer = await gh.post(f"{REPO}/{path.format(sha=sha)}", body)
    assert code == status
    assert message in answer["message"]
    assert fakegithub.repo("acme/widgets").statuses == []


async def test_actions_ci_is_rerun_through_workflow_runs_only(
    fakegithub: FakeGitHub, webhook_receiver: Receiver
) -> None:
    _setup(
        fakegithub, webhook_receiver, CIScript({"tests": FLAKY, "lint": PASS}).through("actions")
    )
    sha = await fakegithub.push("acme/widgets", "feature", {"a.txt": "1"})
    await fakegithub.idle()
    repo = fakegithub.repo("acme/widgets")
    (suite,) = repo.suites.values()
    assert suite.app_id == fakegithub.actions_app.id
    async with api(fakegithub, first_installation(fakegithub)) as gh:
        code, refused = await gh.post(f"{REPO}/check-suites/{suite.id}/rerequest")
        assert (code, refused["message"]) == (403, "Resource not accessible by integration")
        _, listing = await gh.get(f"{REPO}/actions/runs?check_suite_id={suite.id}")
        (workflow_run,) = listing["workflow_runs"]
        assert (workflow_run["head_sha"], workflow_run["conclusion"]) == (sha, "failure")
        code, body = await gh.post(f"{REPO}/actions/runs/{workflow_run['id']}/rerun-failed-jobs")
        assert (code, body) == (201, {})
        await fakegithub.idle()
        _, after = await gh.get(f"{REPO}/actions/runs/{workflow_run['id']}")
    assert (after["run_attempt"], after["status"], after["conclusion"]) == (
        2,
        "completed",
        "success",
    )
    assert sorted((r.name, r.conclusion) for r in repo.check_runs) == [
        ("lint", "success"),
        ("tests", "failure"),
        ("tests", "success"),
    ]


async def test_a_rerun_can_appear_late_and_be_refused_while_it_runs(
    fakegithub: FakeGitHub, webhook_receiver: Receiver
) -> None:
    script = CIScript({"tests": FLAKY}, rerun_delay=0.2)
    repo, _, rerun = await _actions_head(fakegithub, webhook_receiver, script)
    async with api(fakegithub, first_installation(fakegithub)) as gh:
        assert (await gh.post(rerun))[0] == 201
        assert len(repo.check_runs) == 1  # nothing new yet: the re-run appears after its delay
        code, again = await gh.post(rerun)
        assert (code, again["message"]) == (403, "This workflow is already running")
        await fakegithub.idle()
    assert [r.conclusion for r in repo.check_runs] == ["failure", "success"]


async def test_a_gated_rerun_appears_only_once_the_test_opens_the_gate(
    fakegithub: FakeGitHub, webhook_receiver: Receiver
) -> None:
    gate = asyncio.Event()
    script = CIScript({"tests": FLAKY}, rerun_gate=gate)
    repo, run_id, rerun = await _actions_head(fakegithub, webhook_receiver, script)
    async with api(fakegithub, first_installation(fakegithub)) as gh:
        assert (await gh.post(rerun))[0] == 201
        await asyncio.sleep(0.2)  # several times the script's delay: only the gate holds it
        assert len(repo.check_runs) == 1
        _, queued = await gh.get(f"{REPO}/actions/runs/{run_id}")
        assert (queued["run_attempt"], queued["status"]) == (2, "queued")
        code, again = await gh.post(rerun)
        assert (code, again["message"]) == (403, "This workflow is already running")
        gate.set()
        await fakegithub.idle()
    assert [r.conclusion for r in repo.check_runs] == ["failure", "success"]


async def test_a_run_whose_jobs_ended_is_in_progress_until_github_concludes_it(
    fakegithub: FakeGitHub, webhook_receiver: Receiver
) -> None:
    gate = asyncio.Event()
    script = CIScript({"tests": FLAKY}, conclusion_gate=gate)
    repo, run_id, rerun = await _actions_head(fakegithub, webhook_receiver, script)
    assert [(r.status, r.conclusion) for r in repo.check_runs] == [("completed", "failure")]
    async with api(fakegithub, first_installation(fakegithub)) as gh:
        _, running = await gh.get(f"{REPO}/actions/runs/{run_id}")
        assert (running["status"], running["conclusion"]) == ("in_progress", None)
        _, listed = await gh.get(f"{REPO}/actions/runs?status=in_progress")
        assert [r["id"] for r in listed["workflow_runs"]] == [run_id]
        code, refused = await gh.post(rerun)
        assert (code, refused["message"]) == (403, "This workflow is already running")
        gate.set()
        _, concluded = await gh.get(f"{REPO}/actions/runs/{run_id}")
        assert (concluded["status"], concluded["conclusion"]) == ("completed", "failure")
        assert (await gh.post(rerun))[0] == 201
        await fakegithub.idle()
    assert [r.conclusion for r in repo.check_runs] == ["failure", "success"]


async def test_a_scripted_refusal(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> None:
    script = CIScript({"tests": FLAKY}, rerun_refusal=(422, "Unable to re-run")).through("actions")
    _setup(fakegithub, webhook_receiver, script)
    await fakegithub.push("acme/widgets", "feature", {"a.txt": "1"})
    await fakegithub.idle()
    (run_id,) = fakegithub.repo("acme/widgets").workflow_runs
    async with api(fakegithub, first_installation(fakegithub)) as gh:
        code, body = await gh.post(f"{REPO}/actions/runs/{run_id}/rerun-failed-jobs")
    assert (code, body["message"]) == (422, "Unable to re-run")


async def test_a_check_gone_after_some_heads_never_reports_again(
    fakegithub: FakeGitHub, webhook_receiver: Receiver
) -> None:
    _setup(fakegithub, webhook_receiver, CIScript({"tests": PASS, "e2e": gone_after(1)}))
    first = await fakegithub.push("acme/widgets", "feature", {"a.txt": "1"})
    second = await fakegithub.push("acme/widgets", "feature", {"a.txt": "2"})
    await fakegithub.idle()
    assert _conclusions(fakegithub, first) == {"tests": "success", "e2e": "success"}
    assert _conclusions(fakegithub, second) == {"tests": "success"}
