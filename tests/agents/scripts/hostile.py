"""A hostile builder: `hostile.py MODE [JSON]` tries one way out and prints what it got.

Its report (JSON on stdout) lists what it read that contains the word CANARY, which it never
finds in its own environment or argv; the test decides what that means.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

MARK = b"CAN" + b"ARY"  # spelled apart so this file itself is not a hit when read


def hits(where: str, data: bytes) -> list[str]:
    """Every line of `data` with the mark in it, labelled."""
    return [
        f"{where}: {line[:120].decode('utf-8', 'replace')}"
        for line in data.replace(b"\0", b"\n").splitlines()
        if MARK in line
    ]


def read_everything(targets: dict[str, list[str]]) -> dict[str, object]:
    """Every other process's environ, the named files, everything under the named directories."""
    found: list[str] = []
    errors: dict[str, str] = {}
    own = str(os.getpid())
    pids = [entry for entry in os.listdir("/proc") if entry.isdigit() and entry != own]
    for pid in pids:
        try:
            found += hits(f"/proc/{pid}/environ", Path(f"/proc/{pid}/environ").read_bytes())
        except OSError as exc:
            errors[f"/proc/{pid}/environ"] = exc.strerror or str(exc)
    for name in targets["files"]:
        try:
            found += hits(name, Path(name).read_bytes())
        except OSError as exc:
            errors[name] = exc.strerror or str(exc)
    for top in targets["dirs"]:
        for parent, _dirs, files in os.walk(top):
            for file in files:
                path = os.path.join(parent, file)
                try:
                    found += hits(path, Path(path).read_bytes())
                except OSError as exc:
                    errors[path] = exc.strerror or str(exc)
    return {"found": found, "errors": errors, "visible_pids": len(pids) + 1}


def write_everywhere(targets: dict[str, list[str]]) -> dict[str, object]:
    """Try to create or append to every target; report which writes the kernel accepted."""
    accepted, refused = [], {}
    for name in targets["files"]:
        try:
            with open(name, "a") as handle:
                handle.write("written by a hostile builder\n")
            accepted.append(name)
        except OSError as exc:
            refused[name] = exc.strerror or str(exc)
    return {"accepted": accepted, "refused": refused}


def fork_bomb(count: int, token: str) -> dict[str, object]:
    """Start up to `count` sleeping processes named `token`; report how many the kernel allowed."""
    started = 0
    error = ""
    for _ in range(count):
        try:
            pid = os.fork()
        except OSError as exc:
            error = exc.strerror or str(exc)
            break
        if pid == 0:
            try:
                os.execv("/bin/sleep", [token, "120"])  # noqa: S606 - a fixed program
            finally:
                os._exit(0)
        started += 1
    return {"started": started, "error": error}


def peek(path: str) -> str:
    """Where a descriptor leads and the start of what it holds (never waiting on a pipe)."""
    try:
        target = os.readlink(path)
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    try:
        return f"{target}: " + os.read(handle, 4096).decode("latin-1")
    except OSError as exc:
        return f"{target}: unreadable: {exc.strerror or exc}"
    finally:
        os.close(handle)


def command_lines() -> dict[str, object]:
    """Every other process's command line, and what its open descriptors lead to."""
    own = str(os.getpid())
    seen: dict[str, object] = {}
    for pid in sorted(entry for entry in os.listdir("/proc") if entry.isdigit() and entry != own):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError as exc:
            seen[pid] = {"error": exc.strerror or str(exc)}
            continue
        opened: dict[str, str] = {}
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError as exc:
            descriptors, opened["*"] = [], exc.strerror or str(exc)
        for fd in descriptors:
            opened[fd] = peek(f"/proc/{pid}/fd/{fd}")
        seen[pid] = {
            "argv": [part.decode("utf-8", "replace") for part in argv if part],
            "fds": opened,
        }
    return seen


def escape(token: str) -> None:
    """A new session for a daemon that ignores the usual signals and waits to be forgotten."""
    code = (
        "import os, signal, time\n"
        "for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):\n"
        "    signal.signal(s, signal.SIG_IGN)\n"
        "if os.fork() == 0:\n"
        "    time.sleep(300)\n"
        "time.sleep(300)\n"
    )
    subprocess.Popen(
        [sys.executable, "-c", code, token],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main(mode: str, argument: str) -> int:
    if mode == "read":
        print(json.dumps(read_everything(json.loads(argument))))
    elif mode == "command_lines":
        print(json.dumps(command_lines()))
    elif mode == "write":
        print(json.dumps(write_everywhere(json.loads(argument))))
    elif mode == "fork_bomb":
        bomb = json.loads(argument)
        print(json.dumps(fork_bomb(bomb["count"], bomb["token"])), flush=True)
    elif mode == "big_file":
        with open("big.bin", "wb") as handle:  # raises EFBIG past the limit: exit 1
            for _ in range(int(argument)):
                handle.write(b"x" * 1024 * 1024)
    elif mode == "big_file_shell":  # a writer that does not ignore SIGXFSZ, as Python does
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        script = f"exec head -c {int(argument)}M /dev/zero > big.bin"
        os.execv("/bin/sh", ["sh", "-c", script])  # noqa: S606 - a fixed program
    elif mode == "escape_and_exit":
        escape(argument)
        print("escaped", flush=True)
    elif mode == "escape_and_hang":
        escape(argument)
        print("escaped", flush=True)
        time.sleep(300)
    elif mode == "cpu":
        while True:
            pass
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))
