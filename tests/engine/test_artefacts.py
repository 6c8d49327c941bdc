"""The run artefacts Autopack writes and commits: builder output in them is redacted."""

from __future__ import annotations

import json

from app.domain.evidence import PhaseEvidence
from app.domain.report import render_run_summary
from app.domain.report_incident import render_incident
from app.engine.effects.artefacts import artefact_files
from tests.domain.test_report_review import TOKEN, leaky_view


def test_artefacts_never_hold_a_secret_and_stay_valid_json() -> None:
    leaky = leaky_view()
    details = {row.issue_key: row for row in leaky.issues}
    evidence = {"p3": PhaseEvidence(builder_log=f"--- stdout ---\nusing {TOKEN}\n")}
    incident = render_incident(leaky, evidence)
    files = artefact_files(
        leaky.state,
        render_run_summary(leaky),
        details,  # type: ignore[arg-type]
        incident,
    )
    assert {"run_issue_index.json", "phase_p3_issues.json", "INCIDENT.md"} <= set(files)
    for name, content in files.items():
        if name == "strategy.json":
            continue  # the maintainer's own plan, as it was compiled
        assert TOKEN not in content, name
        assert "MIIEpAIBAAKCAQEA" not in content, name
        if name.endswith(".json"):
            json.loads(content)
    phase_file = json.loads(files["phase_p3_issues.json"])
    assert phase_file["needs_human_review"] == ["reviewer note ghp_**** (40 chars)"]
    assert any("ghp_**** (40 chars)" in entry for entry in phase_file["feedback"])
    assert "ghp_**** (40 chars)" in files["INCIDENT.md"].replace("\\", "")
