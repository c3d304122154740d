"""What a served sandbox CRM holds, kept with its org so the CRM outlives its process.

    with start_sandbox("salesforce", org) as running, kept(running, org_dir):
        ...  # taken back before serving, saved a few seconds after writes and on the way out

Kept: every record as written (values, creations, merges, deletions), associations, the custom
fields, properties and validation rules set-up created, id counters. Not kept: sessions, API
usage and rate-limit counters, open query cursors and Bulk jobs (a client simply logs in again).

On disk, in ``<org>/crm/<crm>/``: ``state.json`` (format version, dialect, the org it belongs
to (its manifest, world included), the options its records were rendered with (a convention,
country spellings...: state of one rendering is refused by a sandbox rendering another), when it
was saved, the dialect's small metadata, and the file of each table that differs
from the generated org) and one Arrow IPC file per such table. A save writes only the tables
written to since the last one, each under a new name, then replaces ``state.json`` by a rename:
a save cut short at any point leaves the previous one whole. A ``lock`` held while serving keeps
a second process from serving, and overwriting, the same state.

A graceful stop saves after the server has stopped answering, so nothing written is lost; a
``kill -9`` of the sandbox loses what was written since the last save (at most ``SAVE_SECONDS``
plus the time a save takes).
"""

from __future__ import annotations

import fcntl
import importlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from sandbox.service import CRMS, RunningSandbox, utc_now

__all__ = [
    "FORMAT_VERSION",
    "SAVE_SECONDS",
    "Part",
    "SavedStateError",
    "Snapshot",
    "StateKeeper",
    "kept",
    "state_dir",
]

SAVE_SECONDS = 2.0
FORMAT_VERSION = 2  # 2: the options the records were rendered with
_STATE = "state.json"
_LOG = logging.getLogger(__name__)


class SavedStateError(Exception):
    """Saved CRM state that cannot be taken back (another format, org or sandbox version), or
    that another process is serving."""


@dataclass(frozen=True)
class Part:
    """One table of a CRM's state: ``token`` is replaced by every write to it (tables are
    copy-on-write, so the frame itself serves), ``read`` gives its rows."""

    token: object
    read: Callable[[], pl.DataFrame]

    @classmethod
    def of(cls, frame: pl.DataFrame) -> Part:
        """A part that is a frame."""
        return cls(frame, lambda: frame)


@dataclass(frozen=True)
class Snapshot:
    """A dialect's state at one moment: its tables, and small JSON-ready metadata."""

    parts: Mapping[str, Part]
    meta: Mapping[str, Any]


def state_dir(org_dir: Path, crm: str) -> Path:
    """Where the state of ``crm``'s sandbox over the org in ``org_dir`` is kept."""
    return org_dir / "crm" / crm


class StateKeeper:
    """Takes back and saves one served dialect's state; each dialect package has a ``saved``
    module with ``snapshot(dialect)``, ``restore(dialect, frames, meta)`` and
    ``rendering(dialect)`` (the options its records were rendered with)."""

    def __init__(self, running: RunningSandbox, directory: Path) -> None:
        self.running = running
        self.directory = directory
        self.saved_at: datetime | None = None
        self.last_save_seconds: float | None = None
        self._dialect = importlib.import_module(f"{CRMS[running.crm]}.saved")
        self._tokens: dict[str, object] = {}
        self._files: dict[str, str] = {}
        self._meta: Any = None
        self._generation = 0
        self._lock = threading.Lock()

    def restore(self) -> bool:
        """Take back the saved state, if any; whether there was one."""
        file = self.directory / _STATE
        if not file.is_file():
            self._remember(self._snapshot(), {}, 0)
            return False
        state = _read_state(file)
        self._check(state)
        started = time.perf_counter()
        frames = {name: pl.read_ipc(self.directory / f) for name, f in state["tables"].items()}
        _check_columns(frames, self._snapshot(), self.directory)
        self._dialect.restore(self.running.dialect, frames, state["meta"])
        self._remember(self._snapshot(), state["tables"], state["generation"])
        self.saved_at = datetime.fromisoformat(state["saved_at"])
        _LOG.info(
            "took back %d changed tables from %s in %.2f s",
            len(frames),
            self.directory,
            time.perf_counter() - started,
        )
        return True

    def save(self) -> bool:
        """Write what changed since the last save; whether anything had."""
        with self._lock:
            snapshot = self._snapshot()
            changed = [n for n, p in snapshot.parts.items() if self._tokens.get(n) is not p.token]
            meta = _normalized(snapshot.meta)
            if not changed and meta == self._meta:
                return False
            started = time.perf_counter()
            self._write(snapshot, changed, meta)
            self.last_save_seconds = time.perf_counter() - started
            _LOG.info("saved %d tables in %.2f s", len(changed), self.last_save_seconds)
            return True

    def _write(self, snapshot: Snapshot, changed: list[str], meta: Any) -> None:
        """Changed tables under new names, then ``state.json`` naming them; old files go."""
        generation = self._generation + 1
        files = dict(self._files)
        for name in changed:
            files[name] = f"{_stem(name)}.{generation}.arrow"
            _write_frame(snapshot.parts[name].read(), self.directory / files[name])
        saved_at = utc_now()
        _write_text(self.directory / _STATE, self._state_json(files, meta, generation, saved_at))
        self._remove_unlisted(files)
        self._remember(snapshot, files, generation)
        self.saved_at = saved_at

    def autosave(self, stop: threading.Event, every: float) -> None:
        """Save every ``every`` seconds when something changed, until ``stop`` is set. A failed
        save is logged and tried again: the sandbox keeps serving."""
        while not stop.wait(every):
            try:
                self.save()
            except Exception:
                _LOG.exception("saving the sandbox's state to %s failed", self.directory)

    def about(self) -> dict[str, Any]:
        """Where the state is kept and when it was last saved (for ``/__sandbox/about``)."""
        saved = self.saved_at.isoformat(timespec="seconds") if self.saved_at else None
        return {"kept_in": str(self.directory), "saved_at": saved}

    def _snapshot(self) -> Snapshot:
        snapshot: Snapshot = self._dialect.snapshot(self.running.dialect)
        return snapshot

    def _remember(self, snapshot: Snapshot, files: Mapping[str, str], generation: int) -> None:
        """What is on disk now: its tables (by token), files, metadata and generation."""
        self._tokens = {name: part.token for name, part in snapshot.parts.items()}
        self._files = dict(files)
        self._meta = _normalized(snapshot.meta)
        self._generation = generation

    def _org(self) -> Any:
        return _normalized(asdict(self.running.org.manifest))

    def _rendering(self) -> Any:
        return _normalized(self._dialect.rendering(self.running.dialect))

    def _check(self, state: Mapping[str, Any]) -> None:
        """Refuse state of another format, dialect or org, saying what to do."""
        problem = None
        if state.get("format") != FORMAT_VERSION:
            problem = f"is in format {state.get('format')}, this version reads {FORMAT_VERSION}"
        elif state.get("crm") != self.running.crm:
            problem = f"holds a {state.get('crm')} sandbox, not {self.running.crm}"
        elif state.get("org") != self._org():
            problem = "was written over another org"
        elif state.get("rendering") != self._rendering():
            problem = (
                f"was rendered with {_options(state.get('rendering'))}, not with "
                f"{_options(self._rendering())}"
            )
        if problem:
            raise SavedStateError(f"{self.directory}: the saved CRM state {problem}; {_START_OVER}")

    def _state_json(
        self, files: Mapping[str, str], meta: Any, generation: int, saved_at: datetime
    ) -> str:
        state = {
            "format": FORMAT_VERSION,
            "crm": self.running.crm,
            "org": self._org(),
            "rendering": self._rendering(),
            "saved_at": saved_at.isoformat(),
            "generation": generation,
            "tables": dict(sorted(files.items())),
            "meta": meta,
        }
        return json.dumps(state, indent=1) + "\n"

    def _remove_unlisted(self, files: Mapping[str, str]) -> None:
        """Delete table files no save refers to any more (and leftovers of a cut-short one)."""
        listed = set(files.values())
        for path in self.directory.glob("*.arrow*"):
            if path.name not in listed:
                path.unlink(missing_ok=True)


_START_OVER = "delete that directory to start over from the generated org"


@contextmanager
def kept(
    running: RunningSandbox, org_dir: Path, *, every: float = SAVE_SECONDS
) -> Iterator[StateKeeper]:
    """Keep ``running``'s state with its org for the length of a ``with`` block: take it back
    first, save every ``every`` seconds after a write, stop the server and save at the end."""
    directory = state_dir(org_dir, running.crm)
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory / "lock"):
        keeper = StateKeeper(running, directory)
        keeper.restore()
        stop = threading.Event()
        saver = threading.Thread(
            target=keeper.autosave, args=(stop, every), name="sandbox-save", daemon=True
        )
        saver.start()
        try:
            yield keeper
        finally:
            stop.set()
            saver.join()
            running.server.stop()  # no request lands after the last save
            keeper.save()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (released by the system if the process dies)."""
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SavedStateError(
                f"{path.parent}: another sandbox process is serving this CRM state; stop it first"
            ) from None
        yield


def _read_state(file: Path) -> dict[str, Any]:
    """``state.json``, or a clear refusal when it cannot be read."""
    try:
        state = json.loads(file.read_text())
    except (OSError, ValueError) as error:
        raise SavedStateError(f"{file}: unreadable ({error}); {_START_OVER}") from None
    if not isinstance(state, dict):
        raise SavedStateError(f"{file}: not a saved CRM state; {_START_OVER}")
    return state


def _check_columns(frames: Mapping[str, pl.DataFrame], current: Snapshot, directory: Path) -> None:
    """Refuse saved tables this sandbox does not have, or that lack columns it now generates
    (state written by an older sandbox would break its queries)."""
    for name, frame in frames.items():
        part = current.parts.get(name)
        missing = sorted(set(part.read().columns) - set(frame.columns)) if part else []
        if part is None or missing:
            what = f"lacks {', '.join(missing[:5])}" if part else "is unknown to this sandbox"
            raise SavedStateError(
                f"{directory}: saved table {name} {what} (saved by another sandbox version); "
                f"{_START_OVER}"
            )


def _options(rendering: Any) -> str:
    """``{"convention": "b", ...}`` as ``convention b, ...``, for people."""
    if not isinstance(rendering, dict):
        return "unknown options"
    return ", ".join(f"{name} {json.dumps(value)}" for name, value in sorted(rendering.items()))


def _normalized(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples become lists), so saved and current compare."""
    return json.loads(json.dumps(value))


def _stem(name: str) -> str:
    """A table's name as a file name."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", name)


def _write_frame(frame: pl.DataFrame, path: Path) -> None:
    """Write a table under a temporary name, flush it to disk, then give it its name."""
    temporary = path.with_name(path.name + ".tmp")
    frame.write_ipc(temporary, compression="uncompressed")
    _flushed(temporary)
    os.replace(temporary, path)


def _write_text(path: Path, text: str) -> None:
    """Replace a file by a rename, so readers see the old text or the new, never a part."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    _flushed(temporary)
    os.replace(temporary, path)
    _flushed(path.parent)


def _flushed(path: Path) -> None:
    """Ask the system to put ``path`` (a file or a directory entry) on disk now."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
