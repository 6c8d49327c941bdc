"""A test builder (and auditor) for whole runs about review: what it does is chosen by the title.

As a builder it writes one file per phase, and also (the markers avoid words such as "skip
tests", which would ask for the change and so allow it):
  "[w-unlink]"     deletes tests/test_legacy.py;
  "[w-skip]"       adds a skip marker above `def test_two` in tests/test_widgets.py;
  "[w-skip-once]"  does that on the first attempt only (then it does the work properly);
  "[leak]"            fails its first attempt and then reports, with a summary and an issue
                      whose evidence both hold $TEST_LEAK_TOKEN (never written into a file).
As an auditor (AUTOPACK_AUDIT_FILE is set) it answers $TEST_AUDITOR_VERDICT (default approve),
and its summary repeats the last line of feedback it was given (why the review was asked for).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TESTS = Path("tests", "test_widgets.py")
LEGACY = Path("tests", "test_legacy.py")


def audit() -> int:
    phase = json.loads(Path(os.environ["AUTOPACK_PHASE_FILE"]).read_text())
    verdict = os.environ.get("TEST_AUDITOR_VERDICT", "approve")
    told = phase["feedback"][-1] if phase["feedback"] else "nothing"
    summary = f"{verdict}; told: {told}"
    Path(os.environ["AUTOPACK_RESULT_FILE"]).write_text(
        json.dumps({"verdict": verdict, "summary": summary, "tokens_used": 100})
    )
    return 0


def build() -> int:
    phase = json.loads(Path(os.environ["AUTOPACK_PHASE_FILE"]).read_text())
    title, attempt = phase["title"], phase["attempt"]
    result = Path(os.environ["AUTOPACK_RESULT_FILE"])
    token = os.environ.get("TEST_LEAK_TOKEN", "")
    leak = "[leak]" in title
    if leak and attempt == 1:
        result.write_text(json.dumps({"tokens_used": 100, "summary": f"auth failed with {token}"}))
        return 1
    name = phase["phase_id"].replace(".", "_")
    Path("work").mkdir(exist_ok=True)
    Path("work", f"{name}.txt").write_text(f"{title}\nattempt {attempt}\n")
    if "[w-unlink]" in title:
        LEGACY.unlink()
    skip_once = "[w-skip-once]" in title and attempt == 1
    if "[w-skip]" in title or skip_once:
        text = TESTS.read_text()
        marked = text.replace("def test_two", "@pytest.mark.skip(reason='flaky')\ndef test_two")
        TESTS.write_text(marked)
    report: dict[str, object] = {"tokens_used": 100, "summary": f"wrote work/{name}.txt"}
    if leak:
        report["summary"] = f"wrote work/{name}.txt using {token}"
        report["issues"] = [
            {
                "issue_key": f"builder:hardcoded_credential:{name}",
                "severity": "minor",
                "category": "security",
                "evidence": f"the old config held {token} in plain text",
                "path": f"work/{name}.txt",
                "line": 1,
            }
        ]
    result.write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(audit() if os.environ.get("AUTOPACK_AUDIT_FILE") else build())
