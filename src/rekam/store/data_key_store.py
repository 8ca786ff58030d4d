"""The database side of data keys: rekam.crypto.DataKeyStore over SQLAlchemy."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from rekam.crypto import DataKeyRecord
from rekam.crypto.data_keys import Rewrapped
from rekam.store.database import Database
from rekam.store.models import DataKey


def _record(row: DataKey) -> DataKeyRecord:
    return DataKeyRecord(
        key_id=uuid.UUID(row.key_id),
        owner=row.owner,
        kek_id=row.kek_id,
        kek_version=row.kek_version,
        wrapped=row.wrapped,
        created_at=row.created_at,
        destroyed_at=row.destroyed_at,
        destroyed_reason=row.destroyed_reason,
    )


class SqlDataKeyStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    def load(self, key_id: uuid.UUID) -> DataKeyRecord | None:
        with self.database.transaction() as session:
            row = session.get(DataKey, str(key_id))
            return _record(row) if row else None

    def load_for_owner(self, owner: str) -> DataKeyRecord | None:
        with self.database.transaction() as session:
            row = session.scalar(select(DataKey).where(DataKey.owner == owner))
            return _record(row) if row else None

    def insert(self, record: DataKeyRecord) -> DataKeyRecord:
        try:
            with self.database.transaction() as session:
                session.add(
                    DataKey(
                        key_id=str(record.key_id),
                        owner=record.owner,
                        kek_id=record.kek_id,
                        kek_version=record.kek_version,
                        wrapped=record.wrapped,
                        created_at=record.created_at,
                    )
                )
        except IntegrityError:
            existing = self.load_for_owner(record.owner)
            if existing is None:
                raise
            return existing
        return record

    def replace_wrappings(self, changes: list[Rewrapped]) -> int:
        statement = (
            update(DataKey.__table__)  # type: ignore[arg-type]
            .where(
                DataKey.__table__.c.key_id == bindparam("b_key_id"),
                DataKey.__table__.c.kek_version == bindparam("b_old"),
                DataKey.__table__.c.wrapped.is_not(None),
            )
            .values(kek_version=bindparam("b_new"), wrapped=bindparam("b_wrapped"))
        )
        parameters = [
            {
                "b_key_id": str(c.key_id),
                "b_old": c.old_version,
                "b_new": c.new_version,
                "b_wrapped": c.wrapped,
            }
            for c in changes
        ]
        with self.database.transaction(write=True) as session:
            session.connection().execute(statement, parameters)
            # count what applied (a concurrent rewrap may have moved some keys first)
            applied = session.scalar(
                select(func.count())
                .select_from(DataKey)
                .where(
                    DataKey.key_id.in_([str(c.key_id) for c in changes]),
                    DataKey.wrapped.in_([c.wrapped for c in changes]),
                )
            )
        return int(applied or 0)

    def destroy(self, key_id: uuid.UUID, reason: str, at: datetime) -> None:
        with self.database.transaction() as session:
            session.execute(
                update(DataKey)
                .where(DataKey.key_id == str(key_id))
                .values(wrapped=None, destroyed_at=at, destroyed_reason=reason[:500])
            )

    def below_version(self, kek_id: str, version: int, limit: int) -> list[DataKeyRecord]:
        with self.database.transaction() as session:
            rows = session.scalars(
                select(DataKey)
                .where(
                    DataKey.kek_id == kek_id,
                    DataKey.kek_version < version,
                    DataKey.wrapped.is_not(None),
                )
                .order_by(DataKey.key_id)
                .limit(limit)
            )
            return [_record(r) for r in rows]

    def count_by_version(self) -> dict[tuple[str, int], int]:
        with self.database.transaction() as session:
            rows = session.execute(
                select(DataKey.kek_id, DataKey.kek_version, func.count())
                .where(DataKey.wrapped.is_not(None))
                .group_by(DataKey.kek_id, DataKey.kek_version)
            )
            return {(kek_id, version): int(n) for kek_id, version, n in rows}
