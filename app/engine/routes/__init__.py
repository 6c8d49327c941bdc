"""The routing table: every webhook event Autopack acts on, registered once, composed here.

The endpoint stores a delivery only when a handler here is registered for its event and action
(and the payload can matter: `domain/triggers.may_matter` drops the echoes of Autopack's own
work); the worker dispatches stored deliveries through the same table; app.yml subscribes to
exactly its events (tests/test_app_manifest.py compares them).
"""

from __future__ import annotations

from app.engine.routes import check_actions, ci_wake, installations, ruleset_check, run_triggers
from app.engine.routes.table import Deps, Routes

__all__ = ["EVENTS", "ROUTES", "Deps", "Routes"]

ROUTES = Routes(
    installations.routes,
    run_triggers.routes,
    check_actions.routes,
    ci_wake.routes,
    ruleset_check.routes,
)
EVENTS = ROUTES.events
