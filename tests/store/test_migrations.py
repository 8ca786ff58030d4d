"""Migrations build the schema the models describe, idempotently."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from rekam.store import Database, upgrade_to_latest
from rekam.store.migrations_runner import is_up_to_date
from rekam.store.models import Base


def test_upgrade_creates_the_model_tables_and_is_idempotent(database_url: str) -> None:
    db = Database(database_url)
    assert not is_up_to_date(db)
    upgrade_to_latest(db)
    upgrade_to_latest(db)
    assert is_up_to_date(db)
    tables = set(inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    for name, table in Base.metadata.tables.items():
        columns = {c["name"] for c in inspect(db.engine).get_columns(name)}
        assert columns == {c.name for c in table.columns}, name
    db.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    with db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    db.dispose()
