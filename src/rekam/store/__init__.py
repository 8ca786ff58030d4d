"""Rekam's storage: database engine, models and migrations."""

from rekam.store.database import Database, StoreError
from rekam.store.migrations_runner import upgrade_to_latest

__all__ = ["Database", "StoreError", "upgrade_to_latest"]
