"""A test auditor for whole runs: answers AUDITOR_VERDICT (default reject) and reports, as its
summary, what its request held: the files its diff names, the gate findings' keys, and whether
it got CI output and a builder log.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> int:
    request = json.loads(Path(os.environ["AUTOPACK_AUDIT_FILE"]).read_text())
    seen = {
        "diff_files": sorted(
            line.removeprefix("+++ b/")
            if line.startswith("+++ b/")
            else line.split(" and b/", 1)[1].removesuffix(" differ")
            for line in request["diff"].splitlines()
            if line.startswith("+++ b/") or line.startswith("Binary files ")
        ),
        "gate": sorted(finding["issue_key"] for finding in request["gate_findings"]),
        "ci_output": request.get("ci_output", "")[:120],
        "builder_log": "building" in request.get("builder_log", ""),
    }
    verdict = os.environ.get("AUDITOR_VERDICT", "reject")
    answer: dict[str, object] = {"verdict": verdict, "summary": json.dumps(seen), "tokens_used": 1}
    if verdict == "patch":
        answer["patch"] = {"work/fixed.txt": "fixed by the auditor\n"}
    Path(os.environ["AUTOPACK_RESULT_FILE"]).write_text(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
