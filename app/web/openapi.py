"""The OpenAPI 3.1 description of the REST API (app/web/api.py), served at /api/openapi.json.

Hand-written so it says exactly what the handlers do; tests check it against the router, the
OpenAPI 3.1 meta-schema and real responses, and schemathesis fuzzes the live app with it.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from app.domain.run_state import RunStatus
from app.web.readmodel import (
    ACTIVE,
    DEFAULT_EVENTS_PAGE,
    DEFAULT_PAGE,
    MAX_EVENTS_PAGE,
    MAX_PAGE,
    TERMINAL,
)

Schema = dict[str, Any]

# Paths of the app that this document leaves out on purpose (not operator API).
UNDOCUMENTED = ("/api/github/webhooks", "/health", "/health/ready", "/metrics", "/")

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer", "minimum": 0}
BOOL: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}


def nullable(schema: Schema) -> Schema:
    """`schema` or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], description: str = "") -> Schema:
    """A closed object whose every property is required."""
    schema: Schema = {
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def ref(name: str) -> Schema:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def array(items: Schema) -> Schema:
    """A list of `items`."""
    return {"type": "array", "items": items}


BUDGET = obj(
    {
        "used": {"type": "number", "minimum": 0},
        "cap": nullable({"type": "number"}),
        "exhausted": BOOL,
    },
    "Use of one budget against its cap (null while the strategy is not compiled).",
)

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "properties": {
            "error": {
                "type": "string",
                "enum": ["unauthorized", "bad_request", "not_found", "too_many_attempts"],
            },
            "message": STR,
            "parameter": {"type": "string", "description": "The query or path parameter at fault"},
        },
        "required": ["error", "message"],
        "additionalProperties": False,
    },
    "Promotion": obj({"eligible": BOOL, "reasons": array(STR)}),
    "RunSummary": obj(
        {
            "id": STR,
            "repository": STR,
            "issue_number": INT,
            "issue_title": STR,
            "run_number": INT,
            "branch": STR,
            "status": {"type": "string", "enum": [s.value for s in RunStatus]},
            "terminal": BOOL,
            "created_at": TIME,
            "updated_at": TIME,
            "finished_at": nullable(TIME),
            "failure_reason": nullable(STR),
            "tokens": INT,
            "token_cap": nullable(INT),
            "ci_runs": INT,
            "phases": obj({"total": INT, "green": INT, "failed": INT}),
            "run_scope": nullable(STR),
            "safety_profile": nullable(STR),
            "builder_profile": nullable(STR),
            "auditor": nullable(STR),
            "debt": obj(
                {"cleanup_phase": BOOL, "aged_issue_keys": INT},
                "Whether the run has a debt_cleanup phase; backlog keys aged to major at start.",
            ),
            "pull_number": nullable(INT),
            "check_run_id": nullable(INT),
            "promotion": nullable(ref("Promotion")),
            "needs_human_review": array(
                obj(
                    {"phase_id": STR, "reason": STR},
                    "A phase pushed without the review it needed (no auditor): a person must "
                    "review it, and the run is not eligible for promotion.",
                )
            ),
        }
    ),
    "RunList": obj(
        {
            "runs": array(ref("RunSummary")),
            "next_cursor": nullable(STR),
            "next": nullable({"type": "string", "description": "URL of the next page"}),
        }
    ),
    "Tier": obj(
        {
            "tier_id": STR,
            "position": INT,
            "title": STR,
            "status": STR,
            "tokens": INT,
            "token_cap": INT,
            "ci_runs": INT,
            "ci_run_cap": INT,
            "minor_issues": INT,
            "major_issues": INT,
            "clean": BOOL,
            "cap_hits": array(STR),
        }
    ),
    "TierSummary": obj(
        {
            "tier_id": STR,
            "status": STR,
            "minor_count": INT,
            "major_count": INT,
            "token_cap_hit": BOOL,
            "ci_cap_hit": BOOL,
            "minor_cap_hit": BOOL,
            "major_cap_hit": BOOL,
            "cleanliness": {"type": "string", "enum": ["clean", "not_clean"]},
            "reasons": array(STR),
        }
    ),
    "Phase": obj(
        {
            "phase_id": STR,
            "tier_id": STR,
            "position": INT,
            "title": STR,
            "task_category": STR,
            "complexity": STR,
            "slice": {"type": "string", "description": "task_category:complexity"},
            "builder_mode": STR,
            "ci_profile": STR,
            "status": STR,
            "builder_attempts": INT,
            "auditor_attempts": INT,
            "max_builder_attempts": INT,
            "max_auditor_attempts": INT,
            "tokens": INT,
            "token_cap": INT,
            "ci_runs": INT,
            "last_commit": nullable(STR),
            "failure_reason": STR,
        }
    ),
    "Attempt": obj(
        {
            "phase_id": STR,
            "attempt": INT,
            "actor": {"type": "string", "enum": ["builder", "auditor"]},
            "started_at": TIME,
            "finished_at": nullable(TIME),
            "outcome": STR,
            "tokens": INT,
            "commit_sha": nullable(STR),
            "ci_result": nullable(STR),
            "summary": STR,
            "profile": {
                "type": "string",
                "description": "The operator profile that made it (empty if not recorded)",
            },
            "review_profile": nullable(
                {"type": "string", "description": "The auditor profile of its pre-push review"}
            ),
            "review_tokens": {
                "type": "integer",
                "description": "Tokens its pre-push review spent (part of tokens)",
            },
        }
    ),
    "Issue": obj(
        {
            "issue_key": STR,
            "severity": {"type": "string", "enum": ["minor", "major"]},
            "category": STR,
            "phase_id": STR,
            "tier_id": STR,
            "source": STR,
            "path": nullable(STR),
            "line": nullable(INT),
            "commit_sha": nullable(STR),
            "message": STR,
        }
    ),
    "Budget": BUDGET,
    "RunDetail": obj(
        {
            "run": ref("RunSummary"),
            "head_sha": nullable(STR),
            "awaiting": nullable({"type": "string", "description": "What the run waits for"}),
            "started_at": TIME,
            "tiers": array(ref("Tier")),
            "tier_summaries": array(ref("TierSummary")),
            "phases": array(ref("Phase")),
            "attempts": array(ref("Attempt")),
            "issues": array(ref("Issue")),
            "budgets": obj(
                {
                    "run": obj(
                        {
                            "tokens": ref("Budget"),
                            "wall_seconds": ref("Budget"),
                            "phases": ref("Budget"),
                            "minor_issues": ref("Budget"),
                        }
                    ),
                    "tiers": array(
                        obj(
                            {
                                "tier_id": STR,
                                "tokens": ref("Budget"),
                                "ci_runs": ref("Budget"),
                                "cap_hits": array(STR),
                            }
                        )
                    ),
                }
            ),
        }
    ),
    "Event": obj(
        {
            "seq": {"type": "integer", "minimum": 1},
            "kind": {"type": "string", "enum": ["event", "effect", "transition", "note"]},
            "name": STR,
            "payload": {"description": "The entry's JSON payload (any JSON value)"},
            "created_at": TIME,
        }
    ),
    "EventPage": obj(
        {
            "run_id": STR,
            "events": array(ref("Event")),
            "next_after": nullable(INT),
            "next": nullable({"type": "string", "description": "URL of the next page"}),
        }
    ),
    "BacklogEntry": obj(
        {
            "issue_key": STR,
            "category": STR,
            "base_severity": {"type": "string", "enum": ["minor", "major"]},
            "effective_severity": {"type": "string", "enum": ["minor", "major"]},
            "age_in_runs": INT,
            "age_in_tiers": INT,
            "occurrence_count": INT,
            "first_seen_run": STR,
            "last_seen_run": STR,
            "last_seen_at": STR,
            "unseen_runs": INT,
        }
    ),
    "Backlog": obj(
        {
            "repository": STR,
            "last_run": nullable(STR),
            "aging": obj({"minor_to_major_after_runs": INT, "minor_to_major_after_tiers": INT}),
            "counts": obj({"total": INT, "effective_major": INT}),
            "entries": array(ref("BacklogEntry")),
            "top": obj({"runs": array(STR), "tiers": array(STR), "occurrences": array(STR)}),
        }
    ),
    "Slice": obj(
        {
            "slice": {"type": "string", "description": "task_category:complexity"},
            "task_category": STR,
            "complexity": STR,
            "phases": INT,
            "green": INT,
            "failed": INT,
            "tokens": INT,
            "builder_attempts": INT,
            "auditor_called": INT,
            "auditor_helped": INT,
        }
    ),
    "ProfileSpend": obj(
        {
            "profile": {"type": "string", "description": "An operator profile name"},
            "role": {"type": "string", "enum": ["builder", "auditor", "reviewer"]},
            "attempts": INT,
            "runs": INT,
            "tokens": INT,
        }
    ),
    "BudgetAbort": obj(
        {
            "run_id": STR,
            "repository": STR,
            "issue_number": INT,
            "finished_at": nullable(TIME),
            "reason": STR,
            "tokens": INT,
            "token_cap": nullable(INT),
            "tier_id": nullable({"type": "string", "description": "The tier it stopped in"}),
            "phase_id": nullable({"type": "string", "description": "The phase it stopped in"}),
            "top_tier": nullable({"type": "string", "description": "The tier that spent most"}),
            "top_slice": nullable(
                {"type": "string", "description": "The task_category:complexity that spent most"}
            ),
            "slice_tokens": {"type": "object", "additionalProperties": INT},
            "auditor_called": BOOL,
            "auditor_helped": BOOL,
        }
    ),
    "BudgetReport": obj(
        {
            "repository": nullable(STR),
            "since": nullable(TIME),
            "runs": obj(
                {"total": INT, "by_status": {"type": "object", "additionalProperties": INT}}
            ),
            "budget_aborts": array(ref("BudgetAbort")),
            "slices": array(ref("Slice")),
            "profiles": array(ref("ProfileSpend")),
            "auditor": obj({"phases_escalated": INT, "phases_helped": INT}),
        }
    ),
}


def _param(name: str, where: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
    }


REPOSITORY = _param(
    "repository",
    "query",
    {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$"},
    "Only runs of this repository (owner/name).",
)
SINCE = _param(
    "since",
    "query",
    {"type": "string", "format": "date-time"},
    "Only runs created at or after this time (ISO 8601 with a zone).",
)
RUN_ID = _param(
    "id", "path", {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,128}$"}, "The run id."
)


def _json(schema: str, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": ref(schema)}}}


def _responses(ok: str, *errors: int) -> Schema:
    answers = {
        "200": _json(ok, "OK"),
        "401": {
            **_json("Error", "Missing or wrong bearer token, or no token configured"),
            "headers": {"WWW-Authenticate": {"schema": STR, "description": "Bearer"}},
        },
        "429": {
            **_json("Error", "Too many wrong tokens from this address lately"),
            "headers": {"Retry-After": {"schema": INT, "description": "Seconds to wait"}},
        },
    }
    texts = {
        400: "A bad, unknown or repeated query parameter, or a bad path parameter",
        404: "No run with this id",
    }
    for status in errors:
        answers[str(status)] = _json("Error", texts[status])
    return answers


def _get(operation_id: str, summary: str, params: list[Schema], responses: Schema) -> Schema:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "parameters": params,
            "responses": responses,
            "security": [{"bearer": []}],
        }
    }


PATHS: dict[str, Schema] = {
    "/api/runs": _get(
        "listRuns",
        "Runs, newest first",
        [
            REPOSITORY,
            _param(
                "status",
                "query",
                {"type": "string", "enum": [*(s.value for s in RunStatus), ACTIVE, TERMINAL]},
                "A run state, or `active` (not ended) or `terminal` (ended).",
            ),
            SINCE,
            _param(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
                "Runs per page.",
            ),
            _param(
                "cursor",
                "query",
                {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,512}$"},
                "`next_cursor` of the previous page (opaque: one this API did not hand out is a"
                " 400).",
            ),
        ],
        _responses("RunList", 400),
    ),
    "/api/runs/{id}": _get(
        "getRun",
        "One run: tiers, phases, attempts, issues, budgets",
        [RUN_ID],
        _responses("RunDetail", 400, 404),
    ),
    "/api/runs/{id}/events": _get(
        "listRunEvents",
        "The run's event log, in order",
        [
            RUN_ID,
            _param(
                "after",
                "query",
                {"type": "integer", "minimum": 0, "maximum": 10**9 - 1, "default": 0},
                "Only entries with a larger seq (`next_after` of the previous page).",
            ),
            _param(
                "limit",
                "query",
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_EVENTS_PAGE,
                    "default": DEFAULT_EVENTS_PAGE,
                },
                "Entries per page.",
            ),
        ],
        _responses("EventPage", 400, 404),
    ),
    "/api/repos/{owner}/{repo}/backlog": _get(
        "getBacklog",
        "A repository's open issues with their effective severities",
        [
            _param(
                "owner",
                "path",
                {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}$"},
                "Account.",
            ),
            _param(
                "repo",
                "path",
                {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,100}$"},
                "Repository.",
            ),
        ],
        _responses("Backlog", 400),
    ),
    "/api/reports/budget": _get(
        "budgetReport",
        "Budget aborts, spend per task_category:complexity, auditor help",
        [REPOSITORY, SINCE],
        _responses("BudgetReport", 400),
    ),
    "/api/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI 3.1 document",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
}


@cache
def _document() -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Autopack operator API",
            "version": "1",
            "description": "Runs, their event logs, repository backlogs and budget reports. "
            "Authenticate with `Authorization: Bearer $AUTOPACK_API_TOKEN`.",
        },
        "servers": [{"url": "/"}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def document() -> Schema:
    """The OpenAPI 3.1 document (a fresh copy the caller may change)."""
    return copy.deepcopy(_document())
