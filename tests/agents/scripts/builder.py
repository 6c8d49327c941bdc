"""A test builder: `builder.py MODE` misbehaves (or behaves) in one way per mode."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def write_result(payload: object) -> None:
    Path(os.environ["AUTOPACK_RESULT_FILE"]).write_text(json.dumps(payload))


def main(mode: str) -> int:
    if mode == "edit":
        phase = json.loads(Path(os.environ["AUTOPACK_PHASE_FILE"]).read_text())
        prompt = Path(os.environ["AUTOPACK_PROMPT_FILE"]).read_text()
        Path("src").mkdir(exist_ok=True)
        Path("src/feature.py").write_text(f"# {phase['title']}\n")
        issue = {"issue_key": "k1", "severity": "minor", "category": "style", "evidence": "e"}
        write_result({"tokens_used": 1234, "summary": prompt.splitlines()[0], "issues": [issue]})
    elif mode == "env":
        print(json.dumps(dict(os.environ)))
        Path(os.environ["HOME"], "cache").write_text("home is writable")
        Path("touched.txt").write_text("x")
    elif mode == "hang":
        child = subprocess.Popen(  # a grandchild that ignores SIGTERM, found by its token
            [
                sys.executable,
                "-c",
                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                "print('grandchild ready', flush=True); time.sleep(600)",
                os.environ.get("TEST_TOKEN", "no-token"),
            ]
        )
        print(f"grandchild pid {child.pid}", flush=True)
        Path("grandchild.pid.tmp").write_text(str(child.pid))
        os.rename("grandchild.pid.tmp", "grandchild.pid")  # appears complete or not at all
        time.sleep(600)
    elif mode == "flood":
        line = b"x" * 1023 + b"\n"
        for _ in range(50 * 1024):  # 50 MiB
            sys.stdout.buffer.write(line)
        sys.stdout.buffer.write(b"THE END\n")
        sys.stderr.write("e" * (3 * 1024 * 1024))
        Path("flooded.txt").write_text("done")
    elif mode == "outside":
        Path("inside.txt").write_text("fine")
        Path("../outside.txt").write_text("escaped")
    elif mode == "outside_modify":
        with open("../manifest.json", "a") as handle:
            handle.write("tampered")
    elif mode == "symlink":
        os.symlink("/etc/passwd", "leak")
    elif mode == "delete_all":
        for entry in Path(".").iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    elif mode == "remove_workspace":
        shutil.rmtree(Path.cwd())
    elif mode == "noop":
        write_result({"tokens_used": 10, "summary": "nothing to do"})
    elif mode == "fail":
        Path("half.txt").write_text("half done")
        print("compilation failed", file=sys.stderr)
        return 3
    elif mode == "memory_hog":
        Path("hog.txt").write_text("about to allocate")
        hoard = bytearray(2 * 1024 * 1024 * 1024)
        print(len(hoard))
    elif mode == "cpu_hog":
        while True:
            pass
    elif mode.startswith("result_"):
        Path("changed.txt").write_text("x")
        kind = mode.removeprefix("result_")
        result = Path(os.environ["AUTOPACK_RESULT_FILE"])
        if kind == "malformed":
            result.write_text("{not json")
        elif kind == "list":
            result.write_text("[1, 2]")
        elif kind == "negative":
            write_result({"tokens_used": -5, "summary": "s"})
        elif kind == "absurd":
            write_result({"tokens_used": 10**15})
        elif kind == "wrong_types":
            write_result({"tokens_used": "many", "summary": 7, "issues": [{"issue_key": 1}, "x"]})
        elif kind == "symlink":
            result.symlink_to("/etc/passwd")
        # kind == "missing": write nothing
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
