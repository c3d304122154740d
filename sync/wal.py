"""SQLite's write-ahead log copied into the database by a thread of the store's own.

With SQLite's own rule (``wal_autocheckpoint``), the commit that takes the log past its limit
copies every page the log holds into the database and syncs it, in the committing thread: on the
200,000-account reference org, a cycle with 1,000 new activities logs ~18,000 pages (1,000
activities reach random leaves of four indexes of a 10M-row table), so one commit of every cycle
took ~300 ms of the run. A `Checkpointer` runs PASSIVE checkpoints instead, on a connection of
its own in a daemon thread, woken after each commit: the run goes on while the pages are copied
on the other core. A PASSIVE checkpoint never waits on, or blocks, a reader or writer; it copies
what no open read transaction still needs, and the next writer starts the log over once all of
it is copied.

    checkpointer = Checkpointer("/path/state.db")
    checkpointer.wake()  # after a commit
    checkpointer.close()  # before the last connection closes (which checkpoints what is left)

The store's connections keep SQLite's own rule at `BACKSTOP_PAGES` (64 MiB): it copies only
what the thread has not, so it costs a commit little when the thread keeps up, and it keeps the
log short when the thread cannot (a reader holding an old snapshot keeps the log from starting
over; the thread stopped by an error). A long log is slow to read through: with the rule at
1 GiB, the reference org's first run let the log grow to 1.1 GB, and its score and write stages
took 75 and 55 s instead of 54 and 40. A checkpoint the thread cannot run (a vanished or
unreadable file: it never creates one) is logged and tried again at the next commit; one that
found the log busy (SQLite's own rule copying at that moment) is counted. A process forked from
the store's takes no thread with it: the store starts another there at its first commit.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

__all__ = ["BACKSTOP_PAGES", "Checkpointer"]

BACKSTOP_PAGES = 16_384  # x 4 KiB pages: SQLite's own checkpoint, should the thread fall behind
_LOG = logging.getLogger(__name__)


class Checkpointer:
    """A daemon thread copying the log of the SQLite database at ``path`` into it, once woken."""

    def __init__(self, path: str) -> None:
        # read-write, never create: a database file gone since is an error, not a new file
        self._uri = f"{Path(path).absolute().as_uri()}?mode=rw"
        self._pid = os.getpid()
        self._woken = threading.Event()
        self._closing = False
        self.checkpoints = 0  # PASSIVE checkpoints run (for tests and benchmarks)
        self.busy = 0  # of them, those that found the log being copied by another connection
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def serves_this_process(self) -> bool:
        """False in a process forked from the one that started the thread (it has none)."""
        return self._pid == os.getpid()

    def wake(self) -> None:
        """A commit added pages to the log: copy them soon (wakes while one runs coalesce)."""
        self._woken.set()

    def close(self) -> None:
        """Stop after the checkpoint under way, if any; the log's rest is the last connection's."""
        self._closing = True
        self._woken.set()
        if self.serves_this_process():
            self._thread.join()

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while True:
                self._woken.wait()
                self._woken.clear()
                if self._closing:
                    return
                try:
                    if connection is None:
                        connection = sqlite3.connect(self._uri, uri=True, isolation_level=None)
                    busy, _, _ = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints += 1
                    self.busy += bool(busy)
                except sqlite3.Error as error:
                    self.failures += 1
                    _LOG.warning("checkpoint of the state database's log failed: %s", error)
        finally:
            if connection is not None:
                connection.close()
