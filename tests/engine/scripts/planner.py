"""A test planner: answers the PLAN task with a two-tier plan in AUTOPACK_PLAN.md.

It also scribbles on README.md (Autopack must throw that away). TEST_PLANNER_MODE=fail makes it
fail; =empty makes it answer without a checklist.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

PLAN = """## Tier 1: groundwork
- [ ] Add the settings module
  Put the defaults in one place.
- [ ] Add the loader

## Tier 2: polish
- [ ] Describe it in the README {category=docs complexity=low}
"""


def main() -> int:
    phase = json.loads(Path(os.environ["AUTOPACK_PHASE_FILE"]).read_text())
    result = Path(os.environ["AUTOPACK_RESULT_FILE"])
    mode = os.environ.get("TEST_PLANNER_MODE", "")
    assert phase["phase_id"] == "PLAN", phase
    assert "The issue" in phase["description"]
    Path("README.md").write_text("scribbled on by the planner\n")
    if mode == "fail":
        result.write_text(json.dumps({"tokens_used": 300, "summary": "no idea"}))
        return 1
    Path("AUTOPACK_PLAN.md").write_text("Just do it." if mode == "empty" else PLAN)
    result.write_text(json.dumps({"tokens_used": 700, "summary": "planned"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
