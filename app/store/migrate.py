"""Schema migrations through Alembic: upgrade, and tell whether a database is current."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands against the code's migrations."""

    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        """True when the database is at the newest migration."""
        return self.current == self.head


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(_config(connection), "head")


def _status(connection: Connection) -> SchemaStatus:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    current = MigrationContext.configure(connection).get_current_revision()
    return SchemaStatus(current=current, head=head)


async def upgrade(engine: AsyncEngine) -> SchemaStatus:
    """Apply every pending migration; returns the status afterwards."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
    return await schema_status(engine)


async def schema_status(engine: AsyncEngine) -> SchemaStatus:
    """Read the database's current revision without changing anything."""
    async with engine.connect() as conn:
        return await conn.run_sync(_status)
