"""ECG study reports: a specialist's interpretation, signature status and override

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEXED = ("sop_instance_uid", "study_instance_uid", "patient_id", "reported_at")


def upgrade() -> None:
    op.create_table(
        "ecg_study_reports",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=True),
        sa.Column("key_patient_id", sa.String(length=80), nullable=False),
        sa.Column("interpretation_enc", sa.LargeBinary(), nullable=False),
        sa.Column("signature_status", sa.String(length=16), nullable=False),
        sa.Column("signature_override", sa.Boolean(), nullable=False),
        sa.Column("override_reason_enc", sa.LargeBinary(), nullable=True),
        sa.Column("reported_by", sa.String(length=64), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ecg_study_reports", schema=None) as batch_op:
        for column in INDEXED:
            batch_op.create_index(
                batch_op.f(f"ix_ecg_study_reports_{column}"), [column], unique=False
            )


def downgrade() -> None:
    with op.batch_alter_table("ecg_study_reports", schema=None) as batch_op:
        for column in reversed(INDEXED):
            batch_op.drop_index(batch_op.f(f"ix_ecg_study_reports_{column}"))
    op.drop_table("ecg_study_reports")
