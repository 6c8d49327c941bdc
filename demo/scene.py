"""The demo's world: a repository with CI and a ruleset, a plan, and the operator's builder.

The builder profile is an ordinary operator profile: `demo/builder.py` run by the system's Python
under the bubblewrap sandbox, with this folder shown read-only (`read_only`) since the sandbox
hides everything a builder is not given. Without bwrap the demo says so and runs it unsandboxed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from app.config import BuilderProfile
from app.domain.config_feedback import MODELINE
from tests.fakegithub.ci import CIScript
from tests.fakegithub.scenario import FakeGitHub

DEMO_DIR = Path(__file__).resolve().parent
REPO = "demo/widgets"
MAINTAINER = "maintainer"
RULESET = f"{MODELINE}\nbuilder: demo\nci:\n  start_timeout_minutes: 2\n"
FILES = {
    "README.md": "# widgets\n\nA tiny library of text helpers.\n",
    "widgets.py": (
        '"""Text helpers."""\n\n\ndef greet(name: str) -> str:\n'
        '    """Say hello."""\n    return f"Hello, {name}!"\n'
    ),
    ".github/autopack.yml": RULESET,
}
PLAN_TITLE = "Shout, and say so"
PLAN = """Give widgets a way to shout.

## Tier 1: code
- [ ] Add shout {category=feature complexity=low}
  `shout(text)` returns the text in capitals, with a test.

## Tier 2: docs
- [ ] Describe shout in the README {category=docs complexity=low mode=tweak_light}
"""
# Where the sandbox shows nothing unless told to: a Python living there must be shown too.
_HIDDEN = ("/home", "/root", "/tmp", "/var/tmp", "/run")  # noqa: S108


def build_world(sim: FakeGitHub) -> None:
    """The demo organisation, its repository (CI passes) and a maintainer; the App installed."""
    installation = sim.install("demo")
    sim.create_repo(REPO, FILES, installation=installation, ci=CIScript.pass_())
    sim.set_permission(REPO, MAINTAINER, "maintain")


def _python() -> str:
    """The system's Python: the builder needs no package, and the venv may be hidden."""
    found = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    return found or sys.executable


def sandbox_choice() -> tuple[str | None, str]:
    """The profile's `sandbox` ("bwrap", or "none" when bwrap cannot run here) and a note.

    None when this Autopack's profiles have no sandbox keys at all (it runs builders as is).
    """
    if "sandbox" not in BuilderProfile.model_fields:
        return None, ""
    bwrap = shutil.which("bwrap")
    if bwrap is not None:
        probe = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-pid", "true"]
        try:
            if subprocess.run(probe, capture_output=True, timeout=20, check=False).returncode == 0:  # noqa: S603
                return "bwrap", ""
        except (OSError, subprocess.TimeoutExpired):
            pass
    return "none", (
        "bubblewrap (bwrap) is missing or cannot create namespaces here, so the demo builder runs "
        'WITHOUT a sandbox (sandbox = "none"); install bubblewrap (apt-get install bubblewrap) '
        "or allow unprivileged user namespaces to see it sandboxed"
    )


def operator_config(sandbox: str | None) -> str:
    """The operator's TOML (AUTOPACK_CONFIG) defining the `demo` builder profile."""
    python = _python()
    lines = [
        "# The demo's operator configuration, written by `make demo` (docs/configuration.md).",
        "[builders.demo]",
        'backend = "command"',
        f"command = [{json.dumps(python)}, {json.dumps(str(DEMO_DIR / 'builder.py'))}]",
        "timeout_seconds = 120",
    ]
    if sandbox is not None:
        shown = [str(DEMO_DIR)]
        if python.startswith(_HIDDEN):
            shown.append(str(Path(python).resolve().parent.parent))
        lines += [
            f"sandbox = {json.dumps(sandbox)}",
            f"read_only = {json.dumps(shown)}",
            "network = false",
        ]
    return "\n".join(lines) + "\n"
