"""data keys

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("kek_id", sa.String(length=64), nullable=False),
        sa.Column("kek_version", sa.Integer(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("destroyed_reason", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("key_id"),
        sa.UniqueConstraint("owner"),
    )
    op.create_index("ix_data_keys_kek_version", "data_keys", ["kek_version"])


def downgrade() -> None:
    op.drop_index("ix_data_keys_kek_version", table_name="data_keys")
    op.drop_table("data_keys")
