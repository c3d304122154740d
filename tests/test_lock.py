"""One run at a time per org, on SQLite and PostgreSQL: threads, processes, killed runs, expiry."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from sync import RunLock, Store
from sync.lock import Holder, LockHeld, LockLost, run_lock

ORG = "salesforce:00D000000000001"
T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
TTL = timedelta(minutes=10)
ELSEWHERE = Holder(run_id="run-far", host="worker-7.internal", pid=4242)
SECOND = Holder.this_process("run-2")
# a lock that went unrenewed for its whole ttl: SQLite takes it over; PostgreSQL's lives as long
# as its holder's connection
TAKEN_OVER_WHEN_EXPIRED = {"sqlite": True, "postgresql": False}
# a run in another process: holds the lock, says so, and waits to be killed
HOLD_IN_CHILD = """
import sys
from sync import Store
from sync.lock import Holder, run_lock
with run_lock(Store(sys.argv[1]), sys.argv[2], Holder.this_process("run-child")):
    print("held", flush=True)
    sys.stdin.read()
"""


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _lock_row(store: Store) -> RunLock | None:
    with store.session() as session:
        return session.exec(select(RunLock).where(RunLock.org_key == ORG)).first()


@pytest.fixture
def child(store: Store, store_url: str) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the org's lock."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_IN_CHILD, store_url, ORG],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None and process.stdout.readline() == "held\n"
            yield process
        finally:
            process.kill()


def test_of_two_concurrent_runs_one_is_refused(store: Store) -> None:
    start, done = threading.Barrier(2), threading.Event()
    outcomes: dict[str, str] = {}

    def run(run_id: str) -> None:
        start.wait()
        try:
            with run_lock(store, ORG, Holder.this_process(run_id)):
                outcomes[run_id] = "ran"
                done.wait(timeout=10)
        except LockHeld as refused:
            outcomes[run_id] = str(refused)
            done.set()

    threads = [threading.Thread(target=run, args=(f"run-{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ran = [run_id for run_id, outcome in outcomes.items() if outcome == "ran"]
    assert len(ran) == 1, outcomes
    refusal = outcomes["run-2" if ran == ["run-1"] else "run-1"]
    assert f"holds the run lock of {ORG}: run {ran[0]} on " in refusal


def test_a_refused_run_is_told_who_holds_the_lock_and_since_when(store: Store) -> None:
    clock = Clock()
    with run_lock(store, ORG, ELSEWHERE, now_fn=clock, ttl=TTL):
        clock.now = T0 + timedelta(minutes=3)
        with pytest.raises(LockHeld) as refused, run_lock(store, ORG, SECOND, now_fn=clock):
            pass
    assert (
        f"run lock of {ORG}: run run-far on worker-7.internal (pid 4242) "
        "since 2024-03-01 09:30:00 UTC, last heartbeat 2024-03-01 09:30:00 UTC"
    ) in str(refused.value)


def test_a_run_in_another_process_is_refused_until_that_process_is_killed(
    store: Store, child: subprocess.Popen[str]
) -> None:
    holder = rf"run run-child on \S+ \(pid {child.pid}\) since"
    with pytest.raises(LockHeld, match=holder), run_lock(store, ORG, SECOND):
        pass
    # SIGKILL: no clean-up runs; PostgreSQL ends the session, SQLite sees the process gone
    child.kill()
    child.wait()
    deadline = time.monotonic() + 10
    while True:
        try:
            with run_lock(store, ORG, SECOND):
                break
        except LockHeld:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_an_expired_lock_is_taken_over_on_sqlite_and_its_holder_finds_out(store: Store) -> None:
    clock = Clock()
    with run_lock(store, ORG, ELSEWHERE, now_fn=clock, ttl=TTL) as stale:
        clock.now = T0 + TTL
        if TAKEN_OVER_WHEN_EXPIRED[store.dialect]:
            with run_lock(store, ORG, SECOND, now_fn=clock), pytest.raises(LockLost, match="lost"):
                stale.heartbeat()
        else:
            with pytest.raises(LockHeld), run_lock(store, ORG, SECOND, now_fn=clock):
                pass
            stale.heartbeat()


def test_a_heartbeat_keeps_the_lock_past_its_first_expiry(store: Store) -> None:
    clock = Clock()
    with run_lock(store, ORG, ELSEWHERE, now_fn=clock, ttl=TTL) as lock:
        clock.now = T0 + TTL * 0.9
        lock.heartbeat()
        clock.now = T0 + TTL * 1.5
        renewed = "last heartbeat 2024-03-01 09:39:00 UTC"
        with pytest.raises(LockHeld, match=renewed), run_lock(store, ORG, SECOND, now_fn=clock):
            pass


def test_a_long_stage_keeps_its_lock_without_calling_heartbeat(store: Store) -> None:
    ttl = timedelta(seconds=1.2)  # renewed every 0.4 s by the lock's own thread
    with run_lock(store, ORG, Holder.this_process("run-1"), ttl=ttl):
        time.sleep(1.5 * ttl.total_seconds())  # past the expiry it was taken with
        with pytest.raises(LockHeld), run_lock(store, ORG, SECOND, ttl=ttl):
            pass
        row = _lock_row(store)
    assert row is not None and row.heartbeat_at > row.acquired_at


@contextlib.contextmanager
def _writing_elsewhere(store: Store) -> Iterator[None]:
    """Another connection holding the SQLite database's write lock, as the run's own index
    build does after a first load (`Store.build_indexes_behind`)."""
    other = sqlite3.connect(store.engine.url.database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
    finally:
        other.close()


def test_a_heartbeat_on_sqlite_does_not_wait_for_another_connections_write(store: Store) -> None:
    if store.dialect != "sqlite":
        pytest.skip("SQLite's one write lock")
    clock = Clock()
    with run_lock(store, ORG, ELSEWHERE, now_fn=clock, ttl=TTL) as lock:
        with _writing_elsewhere(store):
            clock.now = T0 + TTL * 0.9
            started = time.monotonic()
            lock.heartbeat()  # still ours and not expired: held, renewed by a later beat
            assert time.monotonic() - started < 5  # the store's busy timeout is 30 s
        row = _lock_row(store)
        assert row is not None and row.heartbeat_at == T0  # not renewed while the other wrote
        lock.heartbeat()  # renewed once the database is free
        row = _lock_row(store)
        assert row is not None and row.heartbeat_at == T0 + TTL * 0.9
        with _writing_elsewhere(store):
            clock.now = T0 + TTL * 2  # expired: a run may have taken it over
            with pytest.raises(LockLost):
                lock.heartbeat()
        with store.engine.connect() as connection:  # the pooled connection waits as before
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


@pytest.mark.parametrize("ending", ["finishes", "fails"])
def test_the_lock_is_free_again_when_the_run_ends(store: Store, ending: str) -> None:
    with contextlib.suppress(RuntimeError), run_lock(store, ORG, Holder.this_process("run-1")):
        if ending == "fails":
            raise RuntimeError("the run failed")
    assert _lock_row(store) is None
    with run_lock(store, ORG, SECOND):
        assert _lock_row(store) is not None


def test_runs_of_different_orgs_do_not_block_each_other(store: Store) -> None:
    with run_lock(store, ORG, Holder.this_process("run-1")), run_lock(store, "hubspot:9", SECOND):
        pass
