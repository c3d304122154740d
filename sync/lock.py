"""One sync run at a time per org: a lock kept in the state database, naming who holds it.

    with run_lock(store, "salesforce:00D5e000000XyZ", Holder.this_process(run_id)) as lock:
        mirror(...)
        lock.heartbeat()          # between stages: raises LockLost if another run took over
        write_back(...)

PostgreSQL: a session advisory lock on a connection kept for the run's length; the server
drops it when that connection ends, so a killed run's lock is free at once. SQLite: the
run_lock row is the lock, taken in one BEGIN IMMEDIATE transaction; it expires `ttl` after its
last heartbeat, and a holder whose process is gone from this host is taken over at once. On
both, the row names the holder and since when, for the refused run's message, and a thread
renews it every ttl/3, so a long stage never loses its lock (on SQLite, while another connection
holds the write lock, a renewal reads the row instead: a first load's index build shorter than
2/3 of the ttl never lets it lapse); `heartbeat()` also checks it.

`now_fn` is the wall clock, not the run's own `now`: the lock is about live processes, and a run
replaying a fixed or simulated `now` must still see a killed run's lock expire.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Table, delete, select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from sync.state import RunLock, StateError
from sync.store import Store

__all__ = [
    "DEFAULT_TTL",
    "HeldLock",
    "Holder",
    "LockError",
    "LockHeld",
    "LockLost",
    "run_lock",
]

DEFAULT_TTL = timedelta(minutes=10)
_RENEW_WAIT_MS = 1_000  # how long a SQLite renewal waits for another connection's write lock
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)  # primary codes: extended ones too
_TABLE: Table = RunLock.__table__  # type: ignore[attr-defined]
_log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class LockError(StateError):
    """Base class of the run lock's errors."""


class LockHeld(LockError):
    """Another run holds the org's lock; the message names it and since when."""


class LockLost(LockError):
    """This run no longer holds its lock: it was taken over, or its connection ended."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: the run, and the host and process it runs in."""

    run_id: str
    host: str
    pid: int

    @classmethod
    def this_process(cls, run_id: str) -> Holder:
        """The holder for run `run_id` in this process on this host."""
        return cls(run_id=run_id, host=socket.gethostname(), pid=os.getpid())

    def __str__(self) -> str:
        return f"run {self.run_id} on {self.host} (pid {self.pid})"


class _Backend(Protocol):
    """How one database takes, renews and gives back an org's lock."""

    def acquire(self, now: datetime, ttl: timedelta) -> None: ...
    def renew(self, now: datetime, ttl: timedelta) -> bool: ...
    def release(self) -> None: ...


class HeldLock:
    """The lock a run holds; `heartbeat()` renews it and says if it was lost."""

    def __init__(self, backend: _Backend, org_key: str, now_fn: Clock, ttl: timedelta) -> None:
        """Remember how to renew the lock; it is already acquired."""
        self.org_key = org_key
        self._backend = backend
        self._now_fn = now_fn
        self._ttl = ttl
        self._mutex = threading.Lock()
        self._lost = False

    def heartbeat(self) -> None:
        """Renew the lock now; raise LockLost if this run no longer holds it."""
        with self._mutex:
            if not self._lost and not self._backend.renew(self._now_fn(), self._ttl):
                self._lost = True
            if self._lost:
                raise LockLost(
                    f"this run lost the run lock of {self.org_key}: it went unrenewed past its "
                    "expiry and another run took it, or its database connection ended; stop "
                    "before writing anything more"
                )


@contextmanager
def run_lock(
    store: Store,
    org_key: str,
    holder: Holder,
    now_fn: Clock | None = None,
    ttl: timedelta = DEFAULT_TTL,
) -> Iterator[HeldLock]:
    """Hold the org's run lock for the block; raise LockHeld if another run holds it."""
    clock = now_fn or _wall_clock
    backend = _BACKENDS[store.dialect](store, org_key, holder)
    backend.acquire(clock(), ttl)
    lock = HeldLock(backend, org_key, clock, ttl)
    stop = threading.Event()
    beat = threading.Thread(
        target=_beat, args=(lock, stop, ttl.total_seconds() / 3), name="run-lock", daemon=True
    )
    beat.start()
    try:
        yield lock
    finally:
        stop.set()
        beat.join()
        backend.release()


class _SqliteLock:
    """The run_lock row as the lock: claimed when absent, expired or left by a dead process."""

    def __init__(self, store: Store, org_key: str, holder: Holder) -> None:
        self._store, self._org_key, self._holder = store, org_key, holder

    def acquire(self, now: datetime, ttl: timedelta) -> None:
        """Claim the row in one write transaction, so two runs cannot both see it free."""
        with self._store.engine.connect() as connection:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            current = _holder_row(connection, self._org_key)
            if current is not None and not _abandoned(current, now):
                raise LockHeld(
                    _held_message(
                        self._org_key,
                        current,
                        f"if that run was killed, its lock is taken over after "
                        f"{_when(current['expires_at'])}",
                    )
                )
            _claim(self._store, connection, self._org_key, self._holder, now, ttl)
            connection.commit()

    def renew(self, now: datetime, ttl: timedelta) -> bool:
        """Push the expiry on; False if the row is no longer ours. While another connection
        holds the database's one write lock past a short wait (the run's own index build after
        a first load, `Store.build_indexes_behind`: a minute or so on the reference org), the
        row is read instead: still ours and not expired, the lock is held, and a later beat
        renews it (every ttl/3: a build shorter than 2/3 of the ttl never lets it lapse). A
        heartbeat between stages so never waits for the build, nor fails after the store's
        30 s busy timeout."""
        with self._store.engine.connect() as connection:
            driver = connection.connection.driver_connection
            waited = driver.execute("PRAGMA busy_timeout").fetchone()[0]
            driver.execute(f"PRAGMA busy_timeout={_RENEW_WAIT_MS}")
            try:
                renewed = _renew_row(connection, self._org_key, self._holder, now, ttl)
                connection.commit()
                return renewed
            except OperationalError as busy:
                connection.rollback()
                if getattr(busy.orig, "sqlite_errorcode", 0) & 0xFF not in _BUSY_CODES:
                    raise
                row = _holder_row(connection, self._org_key)
                if row is None or row["run_id"] != self._holder.run_id:
                    return False
                return not _abandoned(row, now)  # ours, not expired (and this process lives)
            finally:
                if not connection.invalidated:
                    driver.execute(f"PRAGMA busy_timeout={waited}")

    def release(self) -> None:
        """Delete our row (and only ours)."""
        with self._store.engine.begin() as connection:
            _delete_row(connection, self._org_key, self._holder)


class _PostgresLock:
    """A session advisory lock on a connection held for the run, plus the row naming its holder.

    Taking the lock and writing the row happen behind a short transaction-level "gate" lock on
    the same org, so a refused run reads the row of the run that holds the lock now, never the
    row a killed run left behind.
    """

    def __init__(self, store: Store, org_key: str, holder: Holder) -> None:
        self._store, self._org_key, self._holder = store, org_key, holder
        self._connection: Connection | None = None

    def acquire(self, now: datetime, ttl: timedelta) -> None:
        """Try the advisory lock without waiting; on success record ourselves in the row."""
        connection = self._store.engine.connect()
        try:
            key = {"key": self._lock_key(connection)}
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 1))"), key)
            taken = connection.execute(
                text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"), key
            ).scalar_one()
            if not taken:
                raise LockHeld(
                    _held_message(
                        self._org_key,
                        _holder_row(connection, self._org_key),
                        "it is freed when that run ends or its process dies",
                    )
                )
            _claim(self._store, connection, self._org_key, self._holder, now, ttl)
            connection.commit()
        except BaseException:
            connection.invalidate()  # ending the session frees an advisory lock it may hold
            connection.close()
            raise
        self._connection = connection

    def renew(self, now: datetime, ttl: timedelta) -> bool:
        """Touch the row over the lock's own connection: False if that connection is gone."""
        assert self._connection is not None
        try:
            renewed = _renew_row(self._connection, self._org_key, self._holder, now, ttl)
            self._connection.commit()
        except DBAPIError:
            return False
        return renewed

    def release(self) -> None:
        """Delete our row and free the advisory lock, then end the session (which frees it
        too, but only once the server has seen the session end: a run started at once after,
        as a scheduler's may be, could find it still held)."""
        assert self._connection is not None
        try:
            _delete_row(self._connection, self._org_key, self._holder)
            key = {"key": self._lock_key(self._connection)}
            unlock = text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")
            self._connection.execute(unlock, key)
            self._connection.commit()
        except DBAPIError:
            _log.warning("could not clear the run lock row of %s", self._org_key, exc_info=True)
        finally:
            self._connection.invalidate()
            self._connection.close()

    def _lock_key(self, connection: Connection) -> str:
        """The org qualified by the schema: two state databases in one PostgreSQL never clash."""
        schema = connection.execute(text("SELECT current_schema()")).scalar_one()
        return f"handoff:run:{schema}:{self._org_key}"


_BACKENDS: dict[str, Callable[[Store, str, Holder], _Backend]] = {
    "sqlite": _SqliteLock,
    "postgresql": _PostgresLock,
}


def _beat(lock: HeldLock, stop: threading.Event, interval: float) -> None:
    """Renew the lock every `interval` seconds until stopped or lost (while another connection
    writes, `_SqliteLock.renew` reads the row and a later beat renews it)."""
    while not stop.wait(interval):
        try:
            lock.heartbeat()
        except LockLost:
            _log.error("run lock of %s lost", lock.org_key)
            return
        except OperationalError:
            _log.warning("run lock heartbeat of %s failed; retrying", lock.org_key, exc_info=True)


def _holder_row(connection: Connection, org_key: str) -> dict[str, Any] | None:
    """The run_lock row of `org_key`, if any."""
    row = connection.execute(select(_TABLE).where(_TABLE.c.org_key == org_key)).first()
    return None if row is None else dict(row._mapping)


def _claim(
    store: Store,
    connection: Connection,
    org_key: str,
    holder: Holder,
    now: datetime,
    ttl: timedelta,
) -> None:
    """Write the row naming `holder`, in the connection's transaction."""
    row = {
        "org_key": org_key,
        "run_id": holder.run_id,
        "host": holder.host,
        "pid": holder.pid,
        "acquired_at": now,
        "heartbeat_at": now,
        "expires_at": now + ttl,
    }
    with Session(bind=connection) as session:
        store.upsert(session, RunLock, [row])
        session.flush()


def _renew_row(
    connection: Connection, org_key: str, holder: Holder, now: datetime, ttl: timedelta
) -> bool:
    """Move our row's heartbeat and expiry on; False if the row is not ours any more."""
    statement = (
        update(_TABLE)
        .where(_TABLE.c.org_key == org_key, _TABLE.c.run_id == holder.run_id)
        .values(heartbeat_at=now, expires_at=now + ttl)
    )
    return connection.execute(statement).rowcount == 1


def _delete_row(connection: Connection, org_key: str, holder: Holder) -> None:
    """Remove our row; another run's is left alone."""
    connection.execute(
        delete(_TABLE).where(_TABLE.c.org_key == org_key, _TABLE.c.run_id == holder.run_id)
    )


def _abandoned(row: dict[str, Any], now: datetime) -> bool:
    """A SQLite lock is free once expired, or at once when its process is gone from this host."""
    if row["expires_at"] <= now:
        return True
    return row["host"] == socket.gethostname() and not _process_alive(row["pid"])


def _process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (signal 0 only checks; POSIX)."""
    if os.name != "posix":
        return True  # cannot tell cheaply: wait for the expiry
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, under another user
    return True


def _held_message(org_key: str, row: dict[str, Any] | None, hint: str) -> str:
    """Who holds the org's lock and since when, and what happens to it."""
    if row is None:
        return f"another Handoff run holds the run lock of {org_key}; {hint}"
    holder = Holder(run_id=row["run_id"], host=row["host"], pid=row["pid"])
    return (
        f"another Handoff run holds the run lock of {org_key}: {holder} since "
        f"{_when(row['acquired_at'])}, last heartbeat {_when(row['heartbeat_at'])}; {hint}"
    )


def _when(moment: datetime) -> str:
    """A UTC time as an admin reads it."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _wall_clock() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)
