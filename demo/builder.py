"""The demo's builder: a stand-in for a coding agent, following the Builder contract.

It reads the phase (AUTOPACK_PHASE_FILE), makes a small, real change in the working tree, and
reports its tokens and a summary (AUTOPACK_RESULT_FILE). A phase about the README adds a section
to it; any other phase adds a function to widgets.py and a test for it. Standard library only:
it runs under the sandbox with the system's Python, like any operator's builder would.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path


def _name(title: str) -> str:
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "_".join(word for word in words if word not in {"a", "an", "the", "add"})[:40] or "step"


def main() -> int:
    phase = json.loads(Path(os.environ["AUTOPACK_PHASE_FILE"]).read_text(encoding="utf-8"))
    title = str(phase["title"])
    if "readme" in title.lower():
        with Path("README.md").open("a", encoding="utf-8") as readme:
            topic = title.removeprefix("Describe ").removesuffix(" in the README")
            readme.write(f"\n## {topic[:1].upper()}{topic[1:]}\n\n")
            readme.write(
                "`widgets.greet(name)` says hello; `widgets.shout(text)` says it loudly.\n"
            )
        changed = "README.md"
    else:
        name = _name(title)
        with Path("widgets.py").open("a", encoding="utf-8") as module:
            module.write(f'\n\ndef {name}(text: str) -> str:\n    """{title}."""\n')
            module.write("    return text.upper()\n")
        Path("tests").mkdir(exist_ok=True)
        Path("tests", f"test_{name}.py").write_text(
            f"from widgets import {name}\n\n\ndef test_{name}() -> None:\n"
            f'    assert {name}("hi") == "HI"\n',
            encoding="utf-8",
        )
        changed = f"widgets.py and tests/test_{name}.py"
    result = {"tokens_used": 1200 + 100 * int(phase["attempt"]), "summary": f"changed {changed}"}
    Path(os.environ["AUTOPACK_RESULT_FILE"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
