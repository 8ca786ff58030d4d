"""embedded PACS archive: one row per stored DICOM object

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pacs_instances",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("series_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("study_date", sa.String(length=8), nullable=True),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("patient_id", sa.String(length=36), nullable=True),
        sa.Column("key_patient_id", sa.String(length=80), nullable=False),
        sa.Column("dicom_patient_name_enc", sa.LargeBinary(), nullable=True),
        sa.Column("dicom_patient_id_enc", sa.LargeBinary(), nullable=True),
        sa.Column("dicom_patient_id_index", sa.LargeBinary(length=32), nullable=True),
        sa.Column("accession_enc", sa.LargeBinary(), nullable=True),
        sa.Column("accession_index", sa.LargeBinary(length=32), nullable=True),
        sa.Column("study_description_enc", sa.LargeBinary(), nullable=True),
        sa.Column("signature_status", sa.String(length=16), nullable=False),
        sa.Column("signer", sa.String(length=300), nullable=True),
        sa.Column("signature_reason", sa.String(length=500), nullable=True),
        sa.Column("object_name", sa.String(length=80), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256_enc", sa.LargeBinary(), nullable=False),
        sa.Column("stored_by", sa.String(length=64), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sop_instance_uid"),
    )
    with op.batch_alter_table("pacs_instances", schema=None) as batch_op:
        for column in (
            "study_instance_uid",
            "series_instance_uid",
            "study_date",
            "patient_id",
            "dicom_patient_id_index",
            "accession_index",
            "stored_at",
        ):
            batch_op.create_index(batch_op.f(f"ix_pacs_instances_{column}"), [column], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("pacs_instances", schema=None) as batch_op:
        for column in (
            "stored_at",
            "accession_index",
            "dicom_patient_id_index",
            "patient_id",
            "study_date",
            "series_instance_uid",
            "study_instance_uid",
        ):
            batch_op.drop_index(batch_op.f(f"ix_pacs_instances_{column}"))
    op.drop_table("pacs_instances")
