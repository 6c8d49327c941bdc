"""SQLAlchemy models. Schema changes only through Alembic migrations in `migrations/`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of every Autopack table."""


class InstallationRow(Base):
    """A GitHub App installation, kept current from installation webhooks."""

    __tablename__ = "installations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_login: Mapped[str] = mapped_column(String(255))
    account_type: Mapped[str] = mapped_column(String(32))
    repository_selection: Mapped[str] = mapped_column(String(16), default="selected")
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RepositoryRow(Base):
    """A repository an installation gives us access to; `removed_at` set when access ends."""

    __tablename__ = "repositories"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    installation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("installations.id", ondelete="CASCADE"), index=True
    )
    full_name: Mapped[str] = mapped_column(String(255), index=True)
    private: Mapped[bool] = mapped_column(default=False)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InboxRow(Base):
    """One webhook delivery, stored before the endpoint answers; processed by the worker."""

    __tablename__ = "webhook_inbox"
    __table_args__ = (Index("ix_webhook_inbox_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(64), unique=True)
    event: Mapped[str] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(64), nullable=True)
    installation_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RunRow(Base):
    """One run of an issue: the machine's state, its lease, its timer, its version."""

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("repository", "issue_number", "run_number", name="uq_runs_issue_run"),
        # One active run per issue, enforced by the database on both backends.
        Index(
            "ux_runs_active_issue",
            "repository",
            "issue_number",
            unique=True,
            postgresql_where=text("NOT terminal"),
            sqlite_where=text("NOT terminal"),
        ),
        Index("ix_runs_created_at", "created_at"),
        Index("ix_runs_wake_at", "wake_at"),
    )

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    installation_id: Mapped[int] = mapped_column(BigInteger)
    repository: Mapped[str] = mapped_column(String(255))
    issue_number: Mapped[int] = mapped_column(Integer)
    run_number: Mapped[int] = mapped_column(Integer)
    branch: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(Text)
    terminal: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    wake_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)


class RunEventRow(Base):
    """The append-only log of a run: events, effects and their results, transitions, notes."""

    __tablename__ = "run_events"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_run_events_run_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(128), ForeignKey("runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobRow(Base):
    """A pending or done event for a run's machine; `dedupe_key` makes enqueueing idempotent."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("run_id", "dedupe_key", name="uq_jobs_run_dedupe"),
        Index("ix_jobs_run_status_available", "run_id", "status", "available_at"),
        Index("ix_jobs_status_available", "status", "available_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(128), ForeignKey("runs.id", ondelete="CASCADE"))
    payload: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(8), default="event")
    event_type: Mapped[str] = mapped_column(String(64), default="")
    dedupe_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    available_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class BacklogRow(Base):
    """A repository's issue backlog (aging across runs), stored as one JSON document."""

    __tablename__ = "repo_backlogs"

    repository: Mapped[str] = mapped_column(String(255), primary_key=True)
    backlog: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def _run_fk() -> Mapped[str]:
    return mapped_column(String(128), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)


class RunTierRow(Base):
    """One tier of a run: the projection of the machine's tier progress (see store/progress.py)."""

    __tablename__ = "run_tiers"

    run_id: Mapped[str] = _run_fk()
    tier_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    tokens: Mapped[int] = mapped_column(BigInteger)
    token_cap: Mapped[int] = mapped_column(BigInteger)
    ci_runs: Mapped[int] = mapped_column(Integer)
    ci_run_cap: Mapped[int] = mapped_column(Integer)
    minor_issues: Mapped[int] = mapped_column(Integer)
    major_issues: Mapped[int] = mapped_column(Integer)
    clean: Mapped[bool] = mapped_column(Boolean)
    cap_hits: Mapped[str] = mapped_column(String(128))  # comma-separated


class RunPhaseRow(Base):
    """One phase of a run with its slice and spend."""

    __tablename__ = "run_phases"
    __table_args__ = (Index("ix_run_phases_slice", "task_category", "complexity"),)

    run_id: Mapped[str] = _run_fk()
    phase_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tier_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    task_category: Mapped[str] = mapped_column(String(64))
    complexity: Mapped[str] = mapped_column(String(16))
    builder_mode: Mapped[str] = mapped_column(String(32))
    ci_profile: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    builder_attempts: Mapped[int] = mapped_column(Integer)
    auditor_attempts: Mapped[int] = mapped_column(Integer)
    max_builder_attempts: Mapped[int] = mapped_column(Integer)
    max_auditor_attempts: Mapped[int] = mapped_column(Integer)
    tokens: Mapped[int] = mapped_column(BigInteger)
    token_cap: Mapped[int] = mapped_column(BigInteger)
    ci_runs: Mapped[int] = mapped_column(Integer)
    last_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failure_reason: Mapped[str] = mapped_column(Text)


class RunAttemptRow(Base):
    """One builder or auditor attempt at a phase, from its start to its verdict."""

    __tablename__ = "run_attempts"

    run_id: Mapped[str] = _run_fk()
    phase_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    tokens: Mapped[int] = mapped_column(BigInteger)
    commit_sha: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ci_result: Mapped[str | None] = mapped_column(String(16), nullable=True)
    summary: Mapped[str] = mapped_column(Text)
    # The operator profile that made it ("" for attempts recorded before profiles were kept),
    # and the auditor profile and tokens of its pre-push review (counted in `tokens` too).
    profile: Mapped[str] = mapped_column(String(64), default="", server_default="")
    review_profile: Mapped[str | None] = mapped_column(String(64), nullable=True)
    review_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class RunIssueRow(Base):
    """One issue of a run (one row per issue_key) with its worst severity and evidence."""

    __tablename__ = "run_issues"

    run_id: Mapped[str] = _run_fk()
    issue_key: Mapped[str] = mapped_column(Text, primary_key=True)
    severity: Mapped[str] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(100))
    phase_id: Mapped[str] = mapped_column(String(64))
    tier_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    line: Mapped[int | None] = mapped_column(Integer, nullable=True)
    commit_sha: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message: Mapped[str] = mapped_column(Text)


class RunEvidenceRow(Base):
    """What one attempt left for the auditor and the incident pack: its diff, logs, findings."""

    __tablename__ = "run_evidence"

    run_id: Mapped[str] = _run_fk()
    phase_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RefusalNoticeRow(Base):
    """When a refusal comment was last posted on an issue (see store/notices.py)."""

    __tablename__ = "refusal_notices"

    repository: Mapped[str] = mapped_column(String(255), primary_key=True)
    issue_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
