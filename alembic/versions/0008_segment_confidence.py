"""segments: how sure the decoder was of each segment's text

Revision ID: 0008_segment_confidence
Revises: 0003_accounts
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008_segment_confidence"
down_revision: str | None = "0007_voiceprints"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("segments", sa.Column("confidence", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("segments", "confidence")
