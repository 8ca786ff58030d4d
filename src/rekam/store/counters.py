"""Named counters incremented under a row lock (medical record numbers, audit sequence)."""

from __future__ import annotations

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rekam.store.models import Counter


def next_counter(session: Session, name: str) -> int:
    """Increment and return counter ``name`` inside the caller's (write) transaction."""
    statement = update(Counter).where(Counter.name == name).values(value=Counter.value + 1)
    value = session.execute(statement.returning(Counter.value)).scalar()
    if value is not None:
        return int(value)
    try:
        with session.begin_nested():
            session.execute(insert(Counter).values(name=name, value=1))
    except IntegrityError:  # created meanwhile by another writer
        value = session.execute(statement.returning(Counter.value)).scalar()
        return int(value or 0)
    return 1
