"""Who last edited an issue's description, through GraphQL against the simulator."""

from __future__ import annotations

import aiohttp

from app.github.client import GitHubApp
from app.github.issue_editor import last_body_editor
from tests.fakegithub.scenario import FakeGitHub

REPO = "acme/widgets"


async def test_the_last_editor_as_webhooks_and_rest_name_them(fakegithub: FakeGitHub) -> None:
    inst = fakegithub.install("acme")
    fakegithub.create_repo(REPO, installation=inst)
    number = await fakegithub.open_issue(REPO, "Plan", "first", user="alice")
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(session, fakegithub.url, fakegithub.app.id, fakegithub.app.private_key_pem)
        gh = app.installation(inst.id)
        assert await last_body_editor(gh, REPO, number) is None  # never edited
        await fakegithub.edit_issue(REPO, number, "second", sender="mallory")
        assert await last_body_editor(gh, REPO, number) == "mallory"
        await gh.patch(
            "/repos/{owner}/{repo}/issues/{number}",
            {"owner": "acme", "repo": "widgets", "number": number},
            data={"body": "third"},
        )
        # GraphQL names the App's bot "autopack"; REST and webhooks say "autopack[bot]".
        assert await last_body_editor(gh, REPO, number) == f"{fakegithub.app.slug}[bot]"
