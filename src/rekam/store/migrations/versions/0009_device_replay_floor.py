"""Monitoring devices: the highest packet sequence number accepted under the current pairing

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("monitor_devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("accepted_sequence", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("monitor_devices", schema=None) as batch_op:
        batch_op.drop_column("accepted_sequence")
