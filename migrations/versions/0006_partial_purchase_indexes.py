"""Purchases: the phone index holds only the sales still waiting for their customer, the
only ones looked up by phone, so that a sale with a customer has one index fewer to
write; and refunds get an index of their own by the sale they refund, which every refund
asks for and which a table of millions of purchases was read whole to answer.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNLINKED = "customer_id IS NULL"
REFUNDS = "refund_of_id IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_index("ix_purchases_phone_unlinked")
        batch_op.create_index(
            "ix_purchases_phone_unlinked",
            ["phone"],
            unique=False,
            sqlite_where=sa.text(UNLINKED),
            postgresql_where=sa.text(UNLINKED),
        )
        batch_op.create_index(
            "ix_purchases_refund_of",
            ["refund_of_id"],
            unique=False,
            sqlite_where=sa.text(REFUNDS),
            postgresql_where=sa.text(REFUNDS),
        )


def downgrade() -> None:
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_index("ix_purchases_refund_of")
        batch_op.drop_index("ix_purchases_phone_unlinked")
        batch_op.create_index("ix_purchases_phone_unlinked", ["phone"], unique=False)
