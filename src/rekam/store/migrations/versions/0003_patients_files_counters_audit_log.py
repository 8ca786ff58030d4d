"""patients, files, counters, audit log

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 03:44:57.019236
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=True),
        sa.Column("record", sa.String(length=120), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("entry_hash"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "counters",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "patients",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("medical_record_number", sa.String(length=20), nullable=False),
        sa.Column("name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("birth_date_enc", sa.LargeBinary(), nullable=False),
        sa.Column("sex_enc", sa.LargeBinary(), nullable=False),
        sa.Column("nik_enc", sa.LargeBinary(), nullable=False),
        sa.Column("nik_index", sa.LargeBinary(length=16), nullable=False),
        sa.Column("bpjs_enc", sa.LargeBinary(), nullable=True),
        sa.Column("bpjs_index", sa.LargeBinary(length=16), nullable=True),
        sa.Column("address_enc", sa.LargeBinary(), nullable=True),
        sa.Column("phone_enc", sa.LargeBinary(), nullable=True),
        sa.Column("emergency_contact_enc", sa.LargeBinary(), nullable=True),
        sa.Column("allergies_enc", sa.LargeBinary(), nullable=True),
        sa.Column("medical_history_enc", sa.LargeBinary(), nullable=True),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("medical_record_number"),
        sa.UniqueConstraint("nik_index"),
        sa.UniqueConstraint("user_id"),
    )
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patients_bpjs_index"), ["bpjs_index"], unique=False)

    op.create_table(
        "patient_files",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("object_name", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("filename_enc", sa.LargeBinary(), nullable=False),
        sa.Column("sha256_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("object_name"),
    )
    with op.batch_alter_table("patient_files", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_patient_files_patient_id"), ["patient_id"], unique=False
        )

    op.create_table(
        "patient_name_tokens",
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("token_index", sa.LargeBinary(length=16), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("patient_id", "token_index"),
    )
    with op.batch_alter_table("patient_name_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_patient_name_tokens_token_index"), ["token_index"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("patient_name_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_name_tokens_token_index"))

    op.drop_table("patient_name_tokens")
    with op.batch_alter_table("patient_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_files_patient_id"))

    op.drop_table("patient_files")
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patients_bpjs_index"))

    op.drop_table("patients")
    op.drop_table("counters")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_patient_id"))

    op.drop_table("audit_log")
