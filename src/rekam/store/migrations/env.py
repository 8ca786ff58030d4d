"""Alembic environment: migrations run on the connection Rekam hands over."""

from alembic import context

from rekam.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through rekam.store.upgrade_to_latest")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
