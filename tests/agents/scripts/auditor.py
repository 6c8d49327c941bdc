"""A test auditor: `auditor.py MODE` reads AUTOPACK_AUDIT_FILE and writes one kind of verdict."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(mode: str) -> int:
    request = json.loads(Path(os.environ["AUTOPACK_AUDIT_FILE"]).read_text())
    prompt = Path(os.environ["AUTOPACK_PROMPT_FILE"]).read_text()
    seen = (
        f"{request['profile']}|{request['phase']['phase_id']}|{request['diff'].splitlines()[0]}|"
        f"{len(request['ci_failures'])} ci|{len(request['gate_findings'])} gate|"
        f"{'Focus: security' in prompt}"
    )
    issue = {"issue_key": "a1", "severity": "major", "category": "security", "evidence": seen}
    results = {
        "approve": {"verdict": "approve", "summary": seen, "tokens_used": 77},
        "reject": {"verdict": "reject", "summary": "no", "issues": [issue], "tokens_used": 5},
        "patch": {
            "verdict": "patch",
            "summary": "fixed",
            "patch": {"src/app.py": "print('fixed')\n", "junk.txt": None},
            "tokens_used": 9,
        },
        "patch_clean": {
            "verdict": "patch",
            "summary": "fixed",
            "patch": {"src/app.py": "print('fixed')\n"},
            "tokens_used": 9,
        },
        "patch_escape": {"verdict": "patch", "patch": {"../evil.py": "x"}, "tokens_used": 1},
        "patch_empty": {"verdict": "patch", "patch": {}},
        "maybe": {"verdict": "maybe", "tokens_used": 3},
    }
    if mode == "crash":
        print("auditor crashed", file=sys.stderr)
        return 1
    Path(os.environ["AUTOPACK_RESULT_FILE"]).write_text(json.dumps(results[mode]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
