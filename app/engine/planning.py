"""From an issue to a frozen strategy: read the ruleset and the issue, parse, select, compile.

Used by PLAN_BOOTSTRAP and by `/autopack plan`, which answers with the result without running.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from app.config import Settings
from app.domain import report_markdown as md
from app.domain.backlog import Backlog
from app.domain.compiler import OperatorCaps, RunIdentity, compile_strategy
from app.domain.config_feedback import missing_default_builder, unknown_builders
from app.domain.plan import MAX_BODY_BYTES, has_checklist, parse_plan, select_for_run
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
PLANNER_PHASE = "PLAN"
PLANNER_TOKENS = 200_000  # what writing a plan may cost, at most (within the operator's limit)
PLAN_FILE = "AUTOPACK_PLAN.md"  # where the planner writes its plan, in its working directory


@dataclass(frozen=True)
class Planned:
    """A compiled strategy, or the one-line reason there is none."""

    strategy: Strategy | None
    problem: str
    issue_title: str
    default_branch: str
    note: str = ""
    planner_tokens: int = 0


@dataclass(frozen=True)
class PlannerAnswer:
    """What the operator's planner profile wrote: a plan in the issue format, or why not."""

    text: str
    tokens: int = 0
    problem: str = ""


# Asks the planner for a plan: (issue title, issue body, default branch head sha) -> answer.
AskPlanner = Callable[[str, str, str], Awaitable[PlannerAnswer]]


async def plan_run(
    gh: GitHubClient,
    settings: Settings,
    identity: RunIdentity,
    backlog: Backlog | None = None,
    ask_planner: AskPlanner | None = None,
    labelled: tuple[str, str] | None = None,
) -> Planned:
    """Compile the strategy a run of this issue would follow now.

    `labelled` is the issue's (title, body) as the maintainer labelled it; without it the issue
    is read as it is now (`/autopack plan`). An issue without a checklist is one phase, unless
    the operator configured a planner and `ask_planner` is given: then the planner writes the plan
    (in the same format) and that is parsed instead. A maintainer's own checklist always wins.
    """
    repo = identity.repository
    if labelled is None:
        issue = await get_issue(gh, repo, identity.issue_number)
        labelled = (issue.title, issue.body)
    title, body = labelled
    try:
        head = await default_branch_head(gh, repo)
    except RepositoryEmpty:
        return Planned(None, "the repository has no commits to build on", title, "")

    def refuse(problem: str) -> Planned:
        return Planned(None, problem, title, head.branch)

    try:
        text = await read_file(gh, repo, RULESET_PATH, head.sha, MAX_RULESET_BYTES)
        ruleset = load_ruleset(text)
    except (RulesetError, FileTooLarge, NotAFile) as exc:
        return refuse(str(exc))
    operator = settings.operator
    nameable = operator.nameable_builders()
    if text is None and ruleset.builder not in nameable:
        return refuse(missing_default_builder(nameable))
    if unknown := unknown_builders(ruleset, nameable):
        key, name = unknown[0]
        return refuse(
            f"{RULESET_PATH} names builder profile {name!r} ({key}), which the operator has "
            "not configured for repositories (AUTOPACK_CONFIG [builders])"
        )
    plan = parse_plan(title, body)
    planner_tokens = 0
    if operator.planner and ask_planner is None and not has_checklist(body):
        note = f"When the run starts, the planner profile {operator.planner!r} writes the plan."
        plan = replace(plan, warnings=(note, *plan.warnings))
    elif ask_planner is not None and operator.planner and not has_checklist(body):
        answer = await ask_planner(title, body or "", head.sha)
        planner_tokens = answer.tokens
        if has_checklist(answer.text):
            drafted = parse_plan(title, answer.text)
            note = f"The plan was written by the planner profile {operator.planner!r}."
            plan = replace(drafted, warnings=(note, *drafted.warnings))
        else:
            why = answer.problem or "its answer held no checklist"
            note = f"The planner profile {operator.planner!r} gave no plan ({why}): one phase."
            plan = replace(plan, warnings=(note, *plan.warnings))
    selection = select_for_run(plan, ruleset.run_scope, ruleset.budgets.run.max_phases)
    if not selection.plan_for_this_run.tiers:
        return refuse(selection.note)
    caps = OperatorCaps(
        max_tokens_per_run=operator.limits.max_tokens_per_run,
        max_run_minutes=operator.limits.max_run_minutes,
        auditor_available=ruleset.auditor in operator.auditors,
    )
    strategy = compile_strategy(ruleset, selection, backlog or Backlog(), identity, caps)
    return Planned(strategy, "", title, head.branch, selection.note, planner_tokens)


def render_plan_preview(planned: Planned) -> str:
    """The `/autopack plan` answer: the phases, how each was classified, what needs review."""
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
        "| tier | phase | category / complexity / mode | category from | builder | CI | attempts "
        "| tokens |",
        "|---|---|---|---|---|---|---:|---:|",
    ]
    for phase in strategy.phases:
        lines.append(
            f"| {phase.tier_id} | {md.text(phase.title, 80)} | {phase.task_category} / "
            f"{phase.complexity} / {phase.builder_mode} | "
            f"{md.text(phase.category_reason or '—', 120)} | "
            f"`{strategy.builder_for(phase.phase_id)}` | {phase.ci_profile} | "
            f"{phase.max_builder_attempts} | {phase.incident_token_cap:,} |"
        )
    lines += _review_warnings(strategy)
    if planned.note:
        lines += ["", planned.note]
    if strategy.plan_warnings:
        lines += ["", "Warnings:"] + [f"- {warning}" for warning in strategy.plan_warnings]
    return "\n".join(lines) + "\n"


def _review_warnings(strategy: Strategy) -> list[str]:
    """Every phase that will need a review before push, and why; the test changes asked for."""
    auditor = strategy.auditor_backend
    then = (
        f"the auditor `{auditor}` reviews each of their changes before it is pushed."
        if auditor
        else "**no auditor is configured**, so each is pushed and marked **needs human "
        "review**: the run will not be eligible for promotion and the pull request will stay "
        "a draft."
    )
    lines = []
    for phase in strategy.phases:
        if phase.review_reason:
            why = f"{phase.review_reason}; category {md.text(phase.category_reason, 120)}"
            lines.append(f"- ⚠️ {phase.phase_id} {md.text(phase.title, 80)}: {why}")
    out = ["", f"**Needs review before push:** {then}", *lines] if lines else []
    if not auditor:
        out += [
            "",
            "With no auditor, any phase whose change weakens the tests (deletes or skips tests, "
            "removes assertions, loosens CI or coverage) is also pushed and marked for human "
            "review, unless the phase asks for that change.",
        ]
    asked = [
        f"- {phase.phase_id}: {', '.join(f'`{rule}`' for rule in phase.gate.integrity_allowed)}"
        for phase in strategy.phases
        if phase.gate.integrity_allowed
    ]
    if asked:
        out += ["", "**Test changes these phases ask for** (not held for review):", *asked]
    return out


def planner_prompt(title: str, body: str) -> str:
    """The planner's task: turn the issue into a plan in the issue format, written to PLAN_FILE."""
    return "\n".join(
        [
            "Write a plan for the issue below; do not change any other file.",
            "",
            f"Write it to `{PLAN_FILE}` in the current directory, in this format:",
            "",
            "    ## Tier 1: <title>",
            "    - [ ] <phase title> {category=<category> complexity=<low|medium|high>}",
            "      <indented lines: what the phase does, precisely enough for one builder>",
            "",
            "Tiers group phases that belong together and come in the order they must be done;",
            "each phase is one small, reviewable change that keeps the build green. The",
            "{...} part is optional. The repository's files are in the current directory.",
            "",
            "## The issue",
            "",
            f"Title: {title}",
            "",
            body.strip() or "(no description)",
        ]
    )


def read_plan_file(tree: Path) -> str:
    """The plan the planner wrote: a regular file (never a link), cut to the plan size cap."""
    path = tree / PLAN_FILE
    if path.is_symlink() or not path.is_file():
        return ""
    with path.open("rb") as handle:
        return handle.read(MAX_BODY_BYTES).decode("utf-8", "replace")
