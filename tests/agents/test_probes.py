"""Repository probes: operator policy, the sandbox, scrubbed environment, timeouts, caps."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

import pytest

from app.agents.probes import (
    ProbeLimits,
    ProbeResult,
    ProbeSpec,
    ProbeStatus,
    probe_findings,
    probe_specs,
    run_probes,
)
from app.agents.sandbox import SandboxUnavailable
from app.config import OperatorConfig, Probes
from app.domain.change import Change, ChangeKind, EntryType, FileChange
from app.domain.gate import Decision, GatePolicy, evaluate
from app.domain.issue_record import IssueSource, Severity
from tests.agents.processes import nothing_left_with
from tests.sandboxing import read_only_paths, sandbox_host

ALLOWED = OperatorConfig(probes=Probes(allow_repository_probes=True, read_only=read_only_paths()))
PY = sys.executable


def py(code: str) -> list[str]:
    return [PY, "-c", code]


async def run(
    tmp_path: Path,
    *probes: list[str] | ProbeSpec,
    limits: ProbeLimits | None = None,
    operator: OperatorConfig = ALLOWED,
) -> tuple[ProbeResult, ...]:
    """Run probes in tmp_path/ws, tmp_path being the server's data directory."""
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    return await run_probes(
        list(probes),
        workspace,
        operator,
        scratch_dir=tmp_path / "home",
        limits=limits,
        sandbox=sandbox_host(tmp_path),
    )


async def test_operator_policy_off_skips_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ws" / "ran"
    results = await run(
        tmp_path, py(f"open({str(marker)!r}, 'w').close()"), operator=OperatorConfig()
    )
    (result,) = results
    assert result.status is ProbeStatus.SKIPPED
    assert "operator policy" in result.message
    assert result.finding is None
    assert probe_findings(results) == ()
    assert not marker.exists()


async def test_passing_probe_runs_in_the_workspace(tmp_path: Path) -> None:
    (result,) = await run(
        tmp_path, ProbeSpec("cwd", tuple(py("import os; print(os.listdir('.'), os.getcwd())")))
    )
    assert result.status is ProbeStatus.PASSED
    assert result.exit_code == 0
    assert result.finding is None
    assert str(tmp_path / "ws") in result.output


async def test_environment_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "do-not-leak")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@h/db")
    # Values are printed under other names: probe output is redacted, and a quoted value after
    # a "PWD" key reads as a password assignment.
    script = (
        "import json, os; e = os.environ; "
        "print(json.dumps({'names': sorted(e), 'home': e['HOME'], 'dir': e.get('PWD')}))"
    )
    (result,) = await run(tmp_path, py(script))
    env = json.loads(result.output)
    # CPython may add LC_CTYPE; bwrap sets PWD to the directory it starts the probe in.
    assert set(env["names"]) - {"LC_CTYPE", "PWD"} == {"PATH", "HOME", "LANG"}
    assert env["dir"] in (None, str(tmp_path / "ws"))
    assert env["home"] == str(tmp_path / "home")
    assert (tmp_path / "home").is_dir()


async def test_failing_probe_becomes_an_issue_record(tmp_path: Path) -> None:
    code = "import sys\nfor i in range(100): print(f'line {i}')\nsys.exit(3)"
    results = await run(tmp_path, [PY, "-c", code], limits=ProbeLimits(evidence_lines=5))
    (result,) = results
    assert result.status is ProbeStatus.FAILED
    assert result.exit_code == 3
    finding = result.finding
    assert finding is not None
    assert finding.issue_key == f"probe:{Path(PY).name}"
    assert finding.source is IssueSource.PROBE
    assert finding.severity is Severity.MAJOR
    assert finding.category == "probe_failed"
    assert "exited with status 3" in finding.evidence[0]
    assert finding.evidence[1:] == tuple(f"line {i}" for i in range(95, 100))  # the tail
    assert probe_findings(results) == (finding,)


async def test_failed_probe_makes_the_gate_retry(tmp_path: Path) -> None:
    results = await run(tmp_path, ProbeSpec("lint", tuple(py("raise SystemExit(1)"))))
    change = Change("b" * 40, (FileChange("a.py", ChangeKind.ADDED, EntryType.FILE, b"x\n", 1),))
    verdict = evaluate(change, GatePolicy(), probe_findings=probe_findings(results))
    assert verdict.decision is Decision.RETRY
    assert [f.issue_key for f in verdict.findings] == ["probe:lint"]


async def test_hanging_probe_and_its_child_are_killed(tmp_path: Path) -> None:
    token = f"probe-child-{secrets.token_hex(8)}"
    code = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {token!r}])\n"
        "print('started', flush=True)\n"
        "time.sleep(600)\n"
    )
    (result,) = await run(tmp_path, py(code), limits=ProbeLimits(timeout_seconds=5))
    assert result.status is ProbeStatus.TIMED_OUT
    assert result.finding is not None
    assert "timed out after 5 s" in result.finding.evidence[0]
    assert "started" in result.output
    assert "[output stopped" not in result.output
    assert await nothing_left_with(token)


async def test_a_probe_whose_sandbox_cannot_start_raises_instead_of_running(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ws" / "ran"
    operator = OperatorConfig(
        probes=Probes(allow_repository_probes=True, read_only=[str(tmp_path / "missing")])
    )
    with pytest.raises(SandboxUnavailable, match=r"read_only path .*/missing does not exist"):
        await run(tmp_path, py(f"open({str(marker)!r}, 'w').close()"), operator=operator)
    assert not marker.exists()


async def test_a_probe_tool_hidden_by_the_sandbox_is_named(tmp_path: Path) -> None:
    tool = tmp_path / "tools" / "lint"  # in the data directory, which no sandbox shows
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    with pytest.raises(SandboxUnavailable, match=r"lint is hidden inside it \(add its directory"):
        await run(tmp_path, [str(tool)])


async def test_background_child_does_not_hold_a_passing_probe(tmp_path: Path) -> None:
    code = (
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('done')\n"
    )
    (result,) = await run(tmp_path, py(code), limits=ProbeLimits(timeout_seconds=60))
    assert result.status is ProbeStatus.PASSED
    assert result.output == "done\n"


async def test_huge_output_is_capped_to_its_tail(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "for _ in range(80): sys.stdout.write('x' * 65536)\n"
        "print()\nprint('THE END')\nsys.exit(1)\n"
    )
    limits = ProbeLimits(max_output_bytes=10_000)
    (result,) = await run(tmp_path, py(code), limits=limits)
    assert result.status is ProbeStatus.FAILED
    assert result.output_truncated
    assert len(result.output.encode()) <= 10_000
    assert result.output.endswith("THE END\n")
    assert result.finding is not None
    assert result.finding.evidence[-1] == "THE END"
    assert all(len(e) <= limits.evidence_line_chars for e in result.finding.evidence[1:])


async def test_missing_command_is_a_finding(tmp_path: Path) -> None:
    (result,) = await run(tmp_path, ProbeSpec("nope", (str(tmp_path / "no-such-tool"),)))
    assert result.status is ProbeStatus.NOT_STARTED
    assert result.finding is not None
    assert result.finding.issue_key == "probe:nope"


async def test_secrets_in_output_are_masked(tmp_path: Path) -> None:
    token = "gh" + "p_" + "Ab1" * 12
    (result,) = await run(tmp_path, py(f"print('token: ' + {token!r}); raise SystemExit(2)"))
    assert token not in result.output
    assert result.finding is not None
    assert all(token not in e for e in result.finding.evidence)
    assert "ghp_****" in result.output


async def test_probes_run_in_order(tmp_path: Path) -> None:
    results = await run(tmp_path, py("print(1)"), py("raise SystemExit(1)"), py("print(3)"))
    assert [r.status for r in results] == [
        ProbeStatus.PASSED,
        ProbeStatus.FAILED,
        ProbeStatus.PASSED,
    ]
    assert len({r.name for r in results}) == 3


@pytest.mark.parametrize(
    ("commands", "names"),
    [
        ([["ruff", "check", "."]], ["ruff-check"]),
        ([["/usr/bin/python", "-m", "pytest", "-q"]], ["python-pytest"]),
        ([["make", "lint"], ["make", "lint"]], ["make-lint", "make-lint-2"]),
        ([["npm", "run", "test:unit"]], ["npm-run-test_unit"]),
        ([["--"]], ["probe"]),
    ],
)
def test_probe_names(commands: list[list[str]], names: list[str]) -> None:
    assert [spec.name for spec in probe_specs(commands)] == names


@pytest.mark.parametrize("commands", [[[]], [["ruff", ""]]])
def test_probe_specs_refuse_empty(commands: list[list[str]]) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        probe_specs(commands)
