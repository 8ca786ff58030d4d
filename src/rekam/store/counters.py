"""Named counters incremented under a row lock (medical record numbers, audit sequence)."""

from __future__ import annotations

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rekam.store.models import Counter


def next_counter(session: Session, name: str) -> int:
    """Increment and return counter ``name`` inside the caller's (write) transaction."""
    statement = update(Counter).where(Counter.name == name).values(value=Counter.value + 1)
    # Run on the session's connection, as plain SQL: no counter is ever loaded as an object, and
    # the ORM's bulk-update handling cost more than the statement (this runs for every audited
    # action).
    connection = session.connection()
    value = connection.execute(statement.returning(Counter.value)).scalar()
    if value is not None:
        return int(value)
    try:
        with session.begin_nested():
            session.execute(insert(Counter).values(name=name, value=1))
    except IntegrityError:  # created meanwhile by another writer
        value = connection.execute(statement.returning(Counter.value)).scalar()
        return int(value or 0)
    return 1
