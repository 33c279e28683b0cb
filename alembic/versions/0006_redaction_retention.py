"""redaction and retention: the redacted copy and its spans, legal hold, retention marks, and
the retention policy

Revision ID: 0006_redaction_retention
Revises: 0003_accounts
Create Date: 2026-12-07 23:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0006_redaction_retention"
down_revision: str | None = "0005_teams_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("redacted_storage_key", sa.String(length=512)))
    op.create_unique_constraint(
        op.f("uq_calls_redacted_storage_key"), "calls", ["redacted_storage_key"]
    )
    op.add_column(
        "calls",
        sa.Column(
            "redactions",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column(
        "calls",
        sa.Column("legal_hold", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column("calls", sa.Column("audio_deleted_at", sa.DateTime(timezone=True)))
    op.add_column(
        "calls",
        sa.Column(
            "audio_purge_pending", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )
    op.add_column("calls", sa.Column("transcript_deleted_at", sa.DateTime(timezone=True)))
    op.create_table(
        "retention_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("audio_days", sa.Integer()),
        sa.Column("transcript_days", sa.Integer()),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_retention_policy_single_row")),
        sa.CheckConstraint(
            "audio_days IS NULL OR audio_days >= 0",
            name=op.f("ck_retention_policy_audio_days_not_negative"),
        ),
        sa.CheckConstraint(
            "transcript_days IS NULL OR transcript_days >= 0",
            name=op.f("ck_retention_policy_transcript_days_not_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_policy")),
    )


def downgrade() -> None:
    op.drop_table("retention_policy")
    op.drop_column("calls", "transcript_deleted_at")
    op.drop_column("calls", "audio_purge_pending")
    op.drop_column("calls", "audio_deleted_at")
    op.drop_column("calls", "legal_hold")
    op.drop_column("calls", "redactions")
    op.drop_constraint(op.f("uq_calls_redacted_storage_key"), "calls", type_="unique")
    op.drop_column("calls", "redacted_storage_key")
