"""An in-memory DataKeyStore: tests of the crypto library and the file stores need no database."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import datetime

from rekam.crypto import DataKeyRecord
from rekam.crypto.data_keys import Rewrapped


class MemoryDataKeyStore:
    """A DataKeyStore in a dict: the crypto library's tests need no database."""

    def __init__(self) -> None:
        self.records: dict[uuid.UUID, DataKeyRecord] = {}
        self.lock = threading.Lock()

    def load(self, key_id: uuid.UUID) -> DataKeyRecord | None:
        return self.records.get(key_id)

    def load_for_owner(self, owner: str) -> DataKeyRecord | None:
        return next((r for r in self.records.values() if r.owner == owner), None)

    def insert(self, record: DataKeyRecord) -> DataKeyRecord:
        with self.lock:
            existing = self.load_for_owner(record.owner)
            if existing is not None:
                return existing
            self.records[record.key_id] = record
            return record

    def replace_wrappings(self, changes: list[Rewrapped]) -> int:
        applied = 0
        with self.lock:
            for change in changes:
                record = self.records[change.key_id]
                if record.kek_version != change.old_version or record.wrapped is None:
                    continue
                self.records[change.key_id] = replace(
                    record, kek_version=change.new_version, wrapped=change.wrapped
                )
                applied += 1
        return applied

    def destroy(self, key_id: uuid.UUID, reason: str, at: datetime) -> None:
        record = self.records[key_id]
        self.records[key_id] = replace(
            record, wrapped=None, destroyed_at=at, destroyed_reason=reason
        )

    def below_version(self, kek_id: str, version: int, limit: int) -> list[DataKeyRecord]:
        rows = [
            r
            for r in self.records.values()
            if r.kek_id == kek_id and r.kek_version < version and r.wrapped is not None
        ]
        return rows[:limit]

    def count_by_version(self) -> dict[tuple[str, int], int]:
        counts: dict[tuple[str, int], int] = {}
        for r in self.records.values():
            if r.wrapped is not None:
                counts[(r.kek_id, r.kek_version)] = counts.get((r.kek_id, r.kek_version), 0) + 1
        return counts


__all__ = ["MemoryDataKeyStore"]
