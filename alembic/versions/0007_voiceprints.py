"""voiceprints: agents' voice embeddings, and what decided each call speaker's role

Revision ID: 0007_voiceprints
Revises: 0003_accounts
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0007_voiceprints"
down_revision: str | None = "0006_redaction_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE_SOURCE = postgresql.ENUM("CHANNEL", "VOICE", "WORDS", "NONE", name="role_source")
SAMPLE_KIND = postgresql.ENUM("AGENT", "CANDIDATE", name="voiceprint_sample_kind")


def upgrade() -> None:
    ROLE_SOURCE.create(op.get_bind(), checkfirst=True)
    op.add_column(
        "call_speakers",
        sa.Column(
            "role_source",
            postgresql.ENUM(name="role_source", create_type=False),
            server_default="NONE",
            nullable=False,
        ),
    )
    op.add_column("call_speakers", sa.Column("role_confidence", sa.Float(), nullable=True))
    op.create_table(
        "voiceprint_samples",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("call_id", sa.Uuid(), nullable=False),
        sa.Column("speaker", sa.String(length=64), nullable=False),
        sa.Column("kind", SAMPLE_KIND, nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("embedding", postgresql.ARRAY(sa.REAL()), nullable=False),
        sa.Column("speech_s", sa.Float(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_voiceprint_samples_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_voiceprint_samples_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voiceprint_samples")),
        sa.UniqueConstraint(
            "user_id",
            "call_id",
            "speaker",
            name=op.f("uq_voiceprint_samples_user_id_call_id_speaker"),
        ),
    )
    op.create_index(
        op.f("ix_voiceprint_samples_user_id"), "voiceprint_samples", ["user_id"], unique=False
    )
    op.create_table(
        "voiceprints",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("embedding", postgresql.ARRAY(sa.REAL()), nullable=True),
        sa.Column("enrolled", sa.Boolean(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_voiceprints_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_voiceprints")),
    )


def downgrade() -> None:
    op.drop_table("voiceprints")
    op.drop_index(op.f("ix_voiceprint_samples_user_id"), table_name="voiceprint_samples")
    op.drop_table("voiceprint_samples")
    SAMPLE_KIND.drop(op.get_bind(), checkfirst=True)
    op.drop_column("call_speakers", "role_confidence")
    op.drop_column("call_speakers", "role_source")
    ROLE_SOURCE.drop(op.get_bind(), checkfirst=True)
