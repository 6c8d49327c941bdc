"""A stand-in for agent CLIs (`fake_agent_cli.py claude|codex ARGS...`) used by the wrapper tests.

It checks the flags the wrappers in docs/builders.md pass, edits the work tree, and prints
output in the shape the real CLI's JSON modes use.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def claude(args: list[str]) -> int:
    assert args[0] == "-p", args
    assert args[2:4] == ["--output-format", "json"], args
    assert "--permission-mode" in args, args
    prompt = args[1]
    Path("CLAUDE_WAS_HERE.txt").write_text(prompt.splitlines()[0] + "\n")
    answer = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": f"edited with key {os.environ.get('ANTHROPIC_API_KEY')}",
        "usage": {"input_tokens": 100, "output_tokens": 23, "cache_read_input_tokens": 5},
    }
    print(json.dumps(answer))
    return 0


def codex(args: list[str]) -> int:
    assert args[:3] == ["exec", "--sandbox", "workspace-write"], args
    assert sys.stdin.read() == "", "stdin must be empty"
    last = Path(args[args.index("--output-last-message") + 1])
    prompt = args[-1]
    Path("CODEX_WAS_HERE.txt").write_text(prompt.splitlines()[0] + "\n")
    last.write_text(f"codex done with key {os.environ.get('OPENAI_API_KEY')}")
    print(json.dumps({"type": "thread.started", "thread_id": "t"}))
    print("not json at all")
    for _ in range(2):
        usage = {"input_tokens": 50, "cached_input_tokens": 10, "output_tokens": 7}
        print(json.dumps({"type": "turn.completed", "usage": usage}))
    return 0


if __name__ == "__main__":
    tool, *rest = sys.argv[1:]
    sys.exit(claude(rest) if tool == "claude" else codex(rest))
