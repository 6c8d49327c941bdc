"""From an issue to a frozen strategy: read the ruleset and the issue, parse, select, compile.

Used by PLAN_BOOTSTRAP and by `/autopack plan`, which answers with the result without running.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings
from app.domain.backlog import Backlog
from app.domain.compiler import OperatorCaps, RunIdentity, compile_strategy
from app.domain.plan import parse_plan, select_for_run
from app.domain.ruleset import RULESET_PATH, RulesetError, load_ruleset
from app.domain.strategy import Strategy
from app.github.repo import (
    FileTooLarge,
    GitHubClient,
    NotAFile,
    RepositoryEmpty,
    default_branch_head,
    get_issue,
    read_file,
)

MAX_RULESET_BYTES = 64 * 1024


@dataclass(frozen=True)
class Planned:
    """A compiled strategy, or the one-line reason there is none."""

    strategy: Strategy | None
    problem: str
    issue_title: str
    default_branch: str
    note: str = ""


async def plan_run(
    gh: GitHubClient,
    settings: Settings,
    identity: RunIdentity,
    backlog: Backlog | None = None,
) -> Planned:
    """Compile the strategy a run of this issue would follow now."""
    repo = identity.repository
    issue = await get_issue(gh, repo, identity.issue_number)
    try:
        head = await default_branch_head(gh, repo)
    except RepositoryEmpty:
        return Planned(None, "the repository has no commits to build on", issue.title, "")

    def refuse(problem: str) -> Planned:
        return Planned(None, problem, issue.title, head.branch)

    try:
        ruleset = load_ruleset(await read_file(gh, repo, RULESET_PATH, head.sha, MAX_RULESET_BYTES))
    except (RulesetError, FileTooLarge, NotAFile) as exc:
        return refuse(str(exc))
    operator = settings.operator
    if ruleset.builder not in operator.builders:
        return refuse(
            f"{RULESET_PATH} names builder profile {ruleset.builder!r}, which the operator has "
            "not configured (AUTOPACK_CONFIG [builders])"
        )
    plan = parse_plan(issue.title, issue.body)
    selection = select_for_run(plan, ruleset.run_scope, ruleset.budgets.run.max_phases)
    if not selection.plan_for_this_run.tiers:
        return refuse(selection.note)
    caps = OperatorCaps(
        max_tokens_per_run=operator.limits.max_tokens_per_run,
        max_run_minutes=operator.limits.max_run_minutes,
        auditor_available=ruleset.auditor in operator.auditors,
    )
    strategy = compile_strategy(ruleset, selection, backlog or Backlog(), identity, caps)
    return Planned(strategy, "", issue.title, head.branch, selection.note)


def render_plan_preview(planned: Planned) -> str:
    """The `/autopack plan` answer."""
    if planned.strategy is None:
        return f"**Autopack would not start a run:** {planned.problem}"
    strategy = planned.strategy
    lines = [
        "**Autopack plan** (nothing is run; label the issue `autopack:run` to start)",
        "",
        f"Scope `{strategy.run_scope}`, safety `{strategy.safety_profile}`, builder "
        f"`{strategy.builder_profile}`, auditor `{strategy.auditor_backend or 'none'}`, token cap "
        f"{strategy.budget.token_cap:,}.",
        "",
        "| tier | phase | category / complexity / mode | CI | attempts | token cap |",
        "|---|---|---|---|---:|---:|",
    ]
    for phase in strategy.phases:
        lines.append(
            f"| {phase.tier_id} | {phase.title.replace('|', '/')[:80]} | {phase.task_category} / "
            f"{phase.complexity} / {phase.builder_mode} | {phase.ci_profile} | "
            f"{phase.max_builder_attempts} | {phase.incident_token_cap:,} |"
        )
    if planned.note:
        lines += ["", planned.note]
    if strategy.plan_warnings:
        lines += ["", "Warnings:"] + [f"- {warning}" for warning in strategy.plan_warnings]
    return "\n".join(lines) + "\n"
