"""The points ledger by the sale a line belongs to: what a sale earned is asked by every
refund and every sale recorded again, and a ledger of millions of lines was read whole
to answer.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OF_A_SALE = "purchase_id IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_points_ledger_purchase",
        "points_ledger",
        ["purchase_id"],
        unique=False,
        sqlite_where=sa.text(OF_A_SALE),
        postgresql_where=sa.text(OF_A_SALE),
    )


def downgrade() -> None:
    op.drop_index("ix_points_ledger_purchase", table_name="points_ledger")
