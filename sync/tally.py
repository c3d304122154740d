"""Totals of the whole org kept up to date by what changed (the `Tally` table).

A cycle reports how many people are linked, in review or orphaned, and how many live accounts
sit in each tier. Counting every row each cycle would make a quiet cycle's cost grow with the
org, so the stage that changes a total adds what it changed (`add`) in the transaction that
changes the rows; a kind without rows (a new database, or one `forget` dropped because a change
could not be told apart) is counted afresh by its owner (`replace`).

    totals = tally.read(session, "link")          # None: count afresh
    tally.add(session, "link", {"linked": 3, "orphan:missing_data": -3})
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlmodel import Session, col, delete, select

from sync.state import Tally

__all__ = ["add", "forget", "read", "replace", "shifted"]


def read(session: Session, kind: str) -> dict[str, int] | None:
    """The kind's totals by key, or None when they must be counted afresh."""
    rows = session.exec(select(Tally.key, Tally.count).where(Tally.kind == kind)).all()
    return {key: count for key, count in rows if count} if rows else None


def shifted(totals: Mapping[str, int], changes: Mapping[str, int]) -> dict[str, int]:
    """``totals`` with ``changes`` added, keys at zero left out."""
    found = dict(totals)
    for key, change in changes.items():
        found[key] = found.get(key, 0) + change
    return {key: n for key, n in found.items() if n}


def add(session: Session, kind: str, changes: Mapping[str, int]) -> bool:
    """Add ``changes`` to the kind's totals; False (nothing done) when there are none to add to."""
    totals = read(session, kind)
    if totals is None:
        return False
    if any(changes.values()):
        replace(session, kind, shifted(totals, changes))
    return True


def replace(session: Session, kind: str, totals: Mapping[str, int]) -> None:
    """The kind's totals, counted afresh (an empty org keeps one zero row, so it reads as
    counted)."""
    session.exec(delete(Tally).where(col(Tally.kind) == kind))  # type: ignore[call-overload]
    rows = {key: n for key, n in totals.items() if n} or {"": 0}
    session.add_all(Tally(kind=kind, key=key, count=n) for key, n in rows.items())
    session.flush()


def forget(session: Session, kind: str) -> None:
    """Drop the kind's totals: its owner counts them afresh when next needed."""
    session.exec(delete(Tally).where(col(Tally.kind) == kind))  # type: ignore[call-overload]
