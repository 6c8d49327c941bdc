"""The many-runs benchmark's builder: sleeps BENCH_BUILDER_SECONDS (an agent at work), then
writes one file named after the phase and reports a token count (the change the gate pushes)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    phase = json.loads(Path(os.environ["AUTOPACK_PHASE_FILE"]).read_text())
    time.sleep(float(os.environ.get("BENCH_BUILDER_SECONDS", "2")))
    name = phase["phase_id"].replace(".", "_")
    Path("work").mkdir(exist_ok=True)
    Path("work", f"{name}.txt").write_text(f"{phase['title']}\nattempt {phase['attempt']}\n")
    result = {"tokens_used": 1000, "summary": f"wrote work/{name}.txt"}
    Path(os.environ["AUTOPACK_RESULT_FILE"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
