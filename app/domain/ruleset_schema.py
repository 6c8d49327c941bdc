"""Write docs/autopack.schema.json from the Ruleset model: `python -m app.domain.ruleset_schema`.

The one module under app/domain/ that writes a file; it is a developer tool, never imported by
the service.
"""

from __future__ import annotations

import sys
from pathlib import Path

from app.domain.ruleset import SCHEMA_PATH, schema_json


def main(argv: list[str] | None = None) -> int:
    """Write the schema to the given path (default docs/autopack.schema.json)."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0] if args else SCHEMA_PATH)
    target.write_text(schema_json(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
