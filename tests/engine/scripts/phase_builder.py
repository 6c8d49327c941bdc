"""A test builder for whole runs: one file per phase; behaviour chosen by the phase title.

Titles containing "[fail]" make every attempt fail; "[secret]" writes a private key (a gate
violation); "[slow]" sleeps for a minute (to be cancelled); "[issue]" also reports a minor issue
pointing at line 2 of the file it writes; "[look]" also writes what it sees around it (the work
tree's parent directory, process 1); anything else succeeds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    phase = json.loads(Path(os.environ["AUTOPACK_PHASE_FILE"]).read_text())
    title = phase["title"]
    tokens = int(os.environ.get("TEST_BUILDER_TOKENS", "1000"))
    result = Path(os.environ["AUTOPACK_RESULT_FILE"])
    if "[slow]" in title:
        time.sleep(60)
    if "[fail]" in title:
        result.write_text(json.dumps({"tokens_used": tokens, "summary": "could not do it"}))
        return 1
    name = phase["phase_id"].replace(".", "_")
    Path("work").mkdir(exist_ok=True)
    content = f"{title}\nattempt {phase['attempt']}\nfeedback: {len(phase['feedback'])}\n"
    if "[secret]" in title:
        content += "-----BEGIN RSA PRIVATE KEY-----\n" + "MIIEowIBAAKCAQEA" + "q" * 60 + "\n"
        content += "-----END RSA PRIVATE KEY-----\n"
    if "[look]" in title:
        pid1 = Path("/proc/1/cmdline").read_bytes().split(b"\0")[0].decode()
        content += f"parent: {sorted(os.listdir('..'))}\npid 1: {Path(pid1).name}\n"
    Path("work", f"{name}.txt").write_text(content)
    report: dict[str, object] = {"tokens_used": tokens, "summary": f"wrote work/{name}.txt"}
    if "[issue]" in title:
        report["issues"] = [
            {
                "issue_key": f"builder:todo:{name}",
                "severity": "minor",
                "category": "code_quality",
                "evidence": "a TODO is left in the file",
                "path": f"work/{name}.txt",
                "line": 2,
            }
        ]
    result.write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
