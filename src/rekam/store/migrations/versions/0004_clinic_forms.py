"""clinic forms

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 04:22:55.332705
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "medicines",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("form", sa.String(length=60), nullable=False),
        sa.Column("strength", sa.String(length=60), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("medicines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_medicines_name"), ["name"], unique=False)

    op.create_table(
        "practitioners",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("profession", sa.String(length=32), nullable=False),
        sa.Column("specialty", sa.String(length=100), nullable=True),
        sa.Column("str_number", sa.String(length=40), nullable=True),
        sa.Column("sip_number", sa.String(length=60), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id"),
    )
    op.create_table(
        "amendments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("record_table", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("field", sa.String(length=40), nullable=False),
        sa.Column("old_value_enc", sa.LargeBinary(), nullable=True),
        sa.Column("new_value_enc", sa.LargeBinary(), nullable=True),
        sa.Column("reason_enc", sa.LargeBinary(), nullable=False),
        sa.Column("amended_by", sa.String(length=36), nullable=False),
        sa.Column("amended_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("amendments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_amendments_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_amendments_record_id"), ["record_id"], unique=False)

    op.create_table(
        "break_glass_grants",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_by", sa.String(length=36), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("break_glass_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_break_glass_grants_patient_id"), ["patient_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_break_glass_grants_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "consultations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("practitioner_id", sa.String(length=36), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("complaint_enc", sa.LargeBinary(), nullable=True),
        sa.Column("examination_enc", sa.LargeBinary(), nullable=True),
        sa.Column("vital_signs_enc", sa.LargeBinary(), nullable=True),
        sa.Column("plan_enc", sa.LargeBinary(), nullable=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
        ),
        sa.ForeignKeyConstraint(
            ["practitioner_id"],
            ["practitioners.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("consultations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consultations_patient_id"), ["patient_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_consultations_practitioner_id"), ["practitioner_id"], unique=False
        )

    op.create_table(
        "diagnoses",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("consultation_id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("code_enc", sa.LargeBinary(), nullable=False),
        sa.Column("text_enc", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["consultation_id"], ["consultations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("diagnoses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_diagnoses_consultation_id"), ["consultation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_diagnoses_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "lab_orders",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("consultation_id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("test_enc", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ordered_by", sa.String(length=36), nullable=False),
        sa.Column("ordered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result_value_enc", sa.LargeBinary(), nullable=True),
        sa.Column("result_unit_enc", sa.LargeBinary(), nullable=True),
        sa.Column("reference_range_enc", sa.LargeBinary(), nullable=True),
        sa.Column("abnormal_flag_enc", sa.LargeBinary(), nullable=True),
        sa.Column("resulted_by", sa.String(length=36), nullable=True),
        sa.Column("resulted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consultation_id"],
            ["consultations.id"],
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("lab_orders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lab_orders_consultation_id"), ["consultation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_lab_orders_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "prescriptions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("consultation_id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("medicine_id", sa.String(length=36), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("details_enc", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("prescribed_by", sa.String(length=36), nullable=False),
        sa.Column("prescribed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("allergy_override_enc", sa.LargeBinary(), nullable=True),
        sa.Column("dispensed_by", sa.String(length=36), nullable=True),
        sa.Column("dispensed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consultation_id"],
            ["consultations.id"],
        ),
        sa.ForeignKeyConstraint(
            ["medicine_id"],
            ["medicines.id"],
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("prescriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_prescriptions_consultation_id"), ["consultation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_prescriptions_medicine_id"), ["medicine_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_prescriptions_patient_id"), ["patient_id"], unique=False
        )

    op.create_table(
        "procedures",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("consultation_id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("code_enc", sa.LargeBinary(), nullable=False),
        sa.Column("description_enc", sa.LargeBinary(), nullable=True),
        sa.Column("performer_id", sa.String(length=36), nullable=False),
        sa.Column("performed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consultation_id"],
            ["consultations.id"],
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
        ),
        sa.ForeignKeyConstraint(
            ["performer_id"],
            ["practitioners.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("procedures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_procedures_consultation_id"), ["consultation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_procedures_patient_id"), ["patient_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("procedures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_procedures_patient_id"))
        batch_op.drop_index(batch_op.f("ix_procedures_consultation_id"))

    op.drop_table("procedures")
    with op.batch_alter_table("prescriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prescriptions_patient_id"))
        batch_op.drop_index(batch_op.f("ix_prescriptions_medicine_id"))
        batch_op.drop_index(batch_op.f("ix_prescriptions_consultation_id"))

    op.drop_table("prescriptions")
    with op.batch_alter_table("lab_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lab_orders_patient_id"))
        batch_op.drop_index(batch_op.f("ix_lab_orders_consultation_id"))

    op.drop_table("lab_orders")
    with op.batch_alter_table("diagnoses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_diagnoses_patient_id"))
        batch_op.drop_index(batch_op.f("ix_diagnoses_consultation_id"))

    op.drop_table("diagnoses")
    with op.batch_alter_table("consultations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consultations_practitioner_id"))
        batch_op.drop_index(batch_op.f("ix_consultations_patient_id"))

    op.drop_table("consultations")
    with op.batch_alter_table("break_glass_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_break_glass_grants_user_id"))
        batch_op.drop_index(batch_op.f("ix_break_glass_grants_patient_id"))

    op.drop_table("break_glass_grants")
    with op.batch_alter_table("amendments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_amendments_record_id"))
        batch_op.drop_index(batch_op.f("ix_amendments_patient_id"))

    op.drop_table("amendments")
    op.drop_table("practitioners")
    with op.batch_alter_table("medicines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_medicines_name"))

    op.drop_table("medicines")
