"""A test builder for whole runs: one file per phase; behaviour chosen by the phase title.

Titles containing "[fail]" make every attempt fail (so does "[fail-debt]" in the description: a
debt-cleanup phase listing an issue key holding it); "[dirty-fail]" makes every attempt fail
after writing `leak/<phase>-<attempt>.txt` and appending to README.md, "[dirty-once]" only the
first; "[binary]" writes a binary file beside its text file (the gate refuses it); "[secret]"
writes a private key (a gate violation); "[slow]" sleeps for a minute (to be cancelled);
"[nap]" notes its start in TEST_NAP_DIR and sleeps 3 s; "[meet]" waits (up to 20 s) in
TEST_MEET_DIR until another builder has arrived there too, and fails if none does: two such
phases can only both succeed when their builders run at the same time; "[issue]" also reports a
minor issue pointing at line 2 of the file it writes; "[look]" also writes what it sees around it
(the work tree's parent directory, process 1); anything else succeeds. Each attempt
prints a line to stdout and stderr (its log). The file it writes names TEST_BUILDER_PROFILE, the
profile it was started as (set in that profile's env), when set.
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
    if "[nap]" in title:
        naps = Path(os.environ["TEST_NAP_DIR"])
        (naps / f"{len(list(naps.iterdir()))}").write_text("napping\n")
        time.sleep(3)
    if "[meet]" in title and not meet(Path(os.environ["TEST_MEET_DIR"]), phase["run_id"]):
        result.write_text(json.dumps({"tokens_used": tokens, "summary": "met nobody"}))
        return 1
    name = phase["phase_id"].replace(".", "_")
    attempt = phase["attempt"]
    print(f"building {name}, attempt {attempt}")
    print(f"warning: {name} is a test phase", file=sys.stderr)
    if "[dirty-fail]" in title or ("[dirty-once]" in title and attempt == 1):
        Path("leak").mkdir(exist_ok=True)
        Path("leak", f"{name}-{attempt}.txt").write_text("a failed attempt's change\n")
        with Path("README.md").open("a") as readme:
            readme.write("a failed attempt was here\n")
        result.write_text(json.dumps({"tokens_used": tokens, "summary": "gave up half-way"}))
        return 1
    if "[fail]" in title or "[fail-debt]" in phase["description"]:
        result.write_text(json.dumps({"tokens_used": tokens, "summary": "could not do it"}))
        return 1
    Path("work").mkdir(exist_ok=True)
    if "[binary]" in title:
        Path("work", f"{name}.bin").write_bytes(b"\0\1\2 binary")
    content = f"{title}\nattempt {phase['attempt']}\nfeedback: {len(phase['feedback'])}\n"
    if profile := os.environ.get("TEST_BUILDER_PROFILE"):
        content += f"profile: {profile}\n"
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


def meet(folder: Path, me: str) -> bool:
    """Arrive in `folder` and wait for another arrival: True when someone else came."""
    (folder / me).write_text("here\n")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(entry.name != me for entry in folder.iterdir()):
            return True
        time.sleep(0.05)
    return False


if __name__ == "__main__":
    sys.exit(main())
