"""Purchases: the customer/time index also holds the amount, so the nightly classification
reads every customer's history from the index alone.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_index("ix_purchases_customer_occurred")
        batch_op.create_index(
            "ix_purchases_customer_occurred_amount",
            ["customer_id", "occurred_at", "amount"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_index("ix_purchases_customer_occurred_amount")
        batch_op.create_index(
            "ix_purchases_customer_occurred", ["customer_id", "occurred_at"], unique=False
        )
