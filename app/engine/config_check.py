"""The "Autopack config" check run: feedback on `.github/autopack.yml` where it changed.

A push that touches the file (or a pull request from a fork, whose head is compared with its
base) gets one completed check run listing every problem, or saying the file is valid. The
verdict is `app.domain.config_feedback`'s; this module reads the file and writes the check run,
once per commit (a redelivery finds the check run it made and does nothing).
"""

from __future__ import annotations

import logging

from app.config import Settings
from app.domain.config_feedback import CHECK_NAME, Level, review_ruleset, unreadable
from app.domain.payload import Payload
from app.domain.ruleset import MAX_RULESET_BYTES, RULESET_PATH
from app.domain.triggers import config_change
from app.github.checks import Annotation, CheckRunOutput, create_check_run, find_check_run
from app.github.client import GitHubApp
from app.github.repo import FileTooLarge, GitHubClient, NotAFile, read_file
from app.logs import fields
from app.store.inbox import InboxDelivery

log = logging.getLogger("autopack.config_check")
EXTERNAL_ID = "autopack-config"


class ConfigCheck:
    """Posts the config check run for deliveries that change the repository's ruleset."""

    def __init__(self, settings: Settings, app: GitHubApp) -> None:
        self.settings = settings
        self.app = app

    async def handle(self, delivery: InboxDelivery, payload: Payload) -> None:
        """Check the ruleset on the delivery's commit, if the delivery changed it."""
        change = config_change(delivery.event, payload)
        if change is None or payload.installation_id is None or not change.repository:
            return
        gh = self.app.installation(payload.installation_id)
        operator = self.settings.operator
        try:
            text = await _read(gh, change.repository, change.sha)
            if change.base_sha is not None and text == await _read(
                gh, change.repository, change.base_sha
            ):
                return  # the pull request leaves the file as it is
            feedback = review_ruleset(text, operator.nameable_builders(), operator.auditors)
        except (FileTooLarge, NotAFile) as exc:
            text, feedback = None, unreadable(str(exc))
        if await find_check_run(gh, change.repository, change.sha, CHECK_NAME, EXTERNAL_ID):
            return
        annotations = tuple(
            Annotation(
                path=RULESET_PATH,
                start_line=problem.line,
                end_line=problem.line,
                level="failure" if problem.level is Level.FAILURE else "warning",
                message=problem.message,
                title=CHECK_NAME,
            )
            for problem in feedback.problems
            if problem.line is not None and text is not None
        )
        await create_check_run(
            gh,
            change.repository,
            change.sha,
            CHECK_NAME,
            EXTERNAL_ID,
            CheckRunOutput(feedback.title, feedback.summary, annotations=annotations),
            status="completed",
            conclusion=feedback.conclusion,
        )
        log.info(
            "config check posted",
            extra=fields(repository=change.repository, conclusion=feedback.conclusion),
        )


async def _read(gh: GitHubClient, repository: str, sha: str) -> bytes | None:
    return await read_file(gh, repository, RULESET_PATH, sha, MAX_RULESET_BYTES)
