"""accounts: a token version per user, so a password change revokes earlier tokens

Revision ID: 0003_accounts
Revises: 0002_languages
Create Date: 2026-12-01 11:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003_accounts"
down_revision: str | None = "0002_languages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("token_version", sa.Integer(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("users", "token_version")
