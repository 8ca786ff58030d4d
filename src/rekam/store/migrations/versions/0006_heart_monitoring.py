"""heart monitoring: paired devices, thresholds, alerts, heart-rate minutes

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_devices",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("label_enc", sa.LargeBinary(), nullable=False),
        sa.Column("key_enc", sa.LargeBinary(), nullable=True),
        sa.Column("paired_by", sa.String(length=36), nullable=False),
        sa.Column("paired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unpaired_by", sa.String(length=36), nullable=True),
        sa.Column("unpaired_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("monitor_devices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_monitor_devices_patient_id"), ["patient_id"], unique=False
        )

    op.create_table(
        "monitor_thresholds",
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("limits_enc", sa.LargeBinary(), nullable=False),
        sa.Column("set_by", sa.String(length=36), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.PrimaryKeyConstraint("patient_id"),
    )

    op.create_table(
        "monitor_alerts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("episode_id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("details_enc", sa.LargeBinary(), nullable=False),
        sa.Column("strip_enc", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("episode_id"),
    )
    with op.batch_alter_table("monitor_alerts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_monitor_alerts_device_id"), ["device_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_monitor_alerts_patient_id"), ["patient_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_monitor_alerts_started_at"), ["started_at"], unique=False
        )

    op.create_table(
        "heart_rate_minutes",
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary_enc", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.PrimaryKeyConstraint("patient_id", "minute"),
    )


def downgrade() -> None:
    op.drop_table("heart_rate_minutes")
    with op.batch_alter_table("monitor_alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monitor_alerts_started_at"))
        batch_op.drop_index(batch_op.f("ix_monitor_alerts_patient_id"))
        batch_op.drop_index(batch_op.f("ix_monitor_alerts_device_id"))
    op.drop_table("monitor_alerts")
    op.drop_table("monitor_thresholds")
    with op.batch_alter_table("monitor_devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monitor_devices_patient_id"))
    op.drop_table("monitor_devices")
