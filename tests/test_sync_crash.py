"""Crash safety of the sync run (D15): Handoff killed with SIGKILL at chosen points, then run
again, leaves the CRM equal record by record to an uninterrupted run's; and one run at a time.

The CRM is a sandbox served from the test's process (Handoff reaches it at `[sandbox] url`, as it
reaches a lasting sandbox); `handoff sync` runs in a process of its own, the one killed. The kill
points are deterministic without hooks in the product: the sandbox holds a chosen request (its
`/__sandbox/hold` admin route) and the test kills Handoff once the sandbox says it holds it; for
a local stage, a small driver runs the shell's own code (`open_crm`, `run_lock`, `run_sync`)
and stops at a heartbeat or progress tick until killed. Every run scores at the sandbox world's
present, a fixed `now`. The rerun is `handoff sync` in the test's process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import update
from sqlmodel import col, select

from connectors.http import HttpPolicy
from connectors.protocol import Connector, records
from handoff.crm import sandbox_connector, schema_spec
from handoff.settings import SANDBOX_TOKEN_VARIABLE, Settings
from sandbox.generator import generate_org
from sandbox.http import ADMIN_PREFIX
from sandbox.org import Org, save_org
from sandbox.service import RunningSandbox, start_sandbox
from sync import RunLock, Store
from sync.run import ABANDONED
from sync.state import ScoreHistory, SyncRun, WriteLedger
from tests.cli_fixtures import run_cli
from tests.conftest import BACKENDS
from tests.crash_driver import OUTPUT, Spare

pytestmark = pytest.mark.usefixtures("isolated_cli")

# small, yet each CRM's writes take more than one push request (one ledger batch): Salesforce's
# ~230 records two calls of up to 200 (filled across objects), HubSpot's contacts two or more
ACCOUNTS = 60
SEED = 5
TOKEN = "crash-test-sandbox-token-0123456789"
WRITTEN = {"salesforce": ("Account", "Lead"), "hubspot": ("companies", "contacts")}
# a push of people in flight: the accounts have landed, and some people (on Salesforce the
# first call's, which it fills with leads after the accounts; on HubSpot a contacts request's)
PUSH = {
    "salesforce": {"endpoint": "composite/sobjects", "method": "PATCH", "after": 1},
    "hubspot": {"endpoint": "contacts/batch/update", "method": "POST", "after": 1},
}
# a page of a stream well into the mirror: users, accounts and people are committed
PAGE = {
    "salesforce": {"endpoint": "query", "method": "GET", "after": 3},
    "hubspot": {"endpoint": "events", "method": "GET", "after": 4},
}
SETTINGS = """[sandbox]
crm = "{crm}"
accounts = {accounts}
seed = {seed}
url = "{url}"
[state]
database_url = "{database}"
"""


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(ACCOUNTS, SEED)


@pytest.fixture(scope="module")
def org_dir(org: Org, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The org on disk, where Handoff reads the world's present (its manifest)."""
    path = tmp_path_factory.mktemp("org") / "org"
    save_org(org, path)
    return path


@pytest.fixture(scope="module")
def spare() -> Iterator[Spare]:
    """Handoff's next process, started ahead of the case that kills it."""
    ahead = Spare()
    yield ahead
    ahead.close()


@dataclass
class Served:
    """A fresh sandbox CRM served from this process, set up, and what a test does with it."""

    crm: str
    running: RunningSandbox
    connector: Connector

    def admin(self, method: str, route: str, body: Any = None) -> Any:
        response = requests.request(
            method,
            f"{self.running.base_url}{ADMIN_PREFIX}/{route}",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def hold(self, **hold: Any) -> None:
        """Hold the request ``hold`` picks until `release`."""
        self.admin("POST", "hold", hold)

    def held(self, process: subprocess.Popen[str]) -> str:
        """Wait until the sandbox holds the request; fail if Handoff ended first."""
        deadline = time.monotonic() + 60
        while (held := self.admin("GET", "hold")["held"]) is None:
            assert process.poll() is None, _ended(process)
            assert time.monotonic() < deadline, "the sandbox never got the request to hold"
            time.sleep(0.02)
        return str(held)

    def release(self, drop: bool) -> None:
        assert self.admin("POST", "release", {"drop": drop}) == {"released": True}

    def state(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every record of each stream we write, with our fields, read through the connector."""
        found = {}
        for stream in WRITTEN[self.crm]:
            ours = self.connector.streams[stream].writable
            found[stream] = {
                r.id: {k: r.values.get(k) for k in ours}
                for r in records(self.connector.pull(stream))
            }
        return found


@contextmanager
def served(crm: str, org: Org, org_dir: Path) -> Iterator[Served]:
    """A fresh sandbox over ``org``, its fields set up, announcing ``org_dir`` as its org."""
    options = {"tier": "unlimited"} if crm == "hubspot" else {}
    about = {"org": str(org_dir), "pid": os.getpid()}
    with start_sandbox(crm, org, token=TOKEN, about=lambda: about, **options) as running:
        connector = sandbox_connector(crm, running.base_url, TOKEN, HttpPolicy())
        connector.ensure_schema(schema_spec(Settings()))
        yield Served(crm, running, connector)


def _configure(crm: str, sandbox: Served, database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """settings.toml in the working directory: this sandbox, this state database."""
    text = SETTINGS.format(
        crm=crm, accounts=ACCOUNTS, seed=SEED, url=sandbox.running.base_url, database=database
    )
    Path("settings.toml").write_text(text)
    monkeypatch.setenv(SANDBOX_TOKEN_VARIABLE, TOKEN)


def _ended(process: subprocess.Popen[str]) -> str:
    printed = Path(OUTPUT).read_text() if Path(OUTPUT).exists() else ""
    return f"Handoff ended (exit {process.poll()}) before the kill point:\n{printed}"


def _kill(process: subprocess.Popen[str]) -> int:
    """SIGKILL: no clean-up of any kind runs in Handoff; the pid it had."""
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL
    return process.pid


@dataclass(frozen=True)
class Outcome:
    """What a run to completion leaves: the CRM's records, and what our state database keeps."""

    crm: dict[str, dict[str, dict[str, Any]]]
    ledger: dict[tuple[str, str], tuple[str, str]]  # (object, id) -> (values hash, status)
    history: dict[str, list[tuple[int, str, str]]]  # account -> [(score, tier, model)]


def _outcome(sandbox: Served, store: Store) -> Outcome:
    with store.session() as session:
        ledger = {
            (row.object, row.record_id): (row.values_hash, row.status)
            for row in session.exec(select(WriteLedger))
        }
        history: dict[str, list[tuple[int, str, str]]] = {}
        rows = session.exec(select(ScoreHistory).order_by(col(ScoreHistory.id))).all()
        for row in rows:
            history.setdefault(row.account_id, []).append((row.score, row.tier, row.model_version))
    return Outcome(sandbox.state(), ledger, history)


@pytest.fixture(scope="module")
def clean(
    org: Org, org_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Mapping[str, Outcome]:
    """Each CRM after one uninterrupted `handoff sync` on a fresh sandbox over the same org."""
    found = {}
    for crm in WRITTEN:
        with pytest.MonkeyPatch.context() as patch, served(crm, org, org_dir) as sandbox:
            patch.chdir(tmp_path_factory.mktemp(f"clean-{crm}"))
            for name in [name for name in os.environ if name.startswith("HANDOFF_")]:
                patch.delenv(name)  # as `isolated_cli` does for each test
            _configure(crm, sandbox, "sqlite:///state.db", patch)
            code, output = run_cli("sync")
            assert code == 0, output
            with Store.open("sqlite:///state.db") as store:
                found[crm] = _outcome(sandbox, store)
    return found


def _database(backend: str, request: pytest.FixtureRequest) -> str:
    if backend == "postgresql":
        return str(request.getfixturevalue("pg_schema_url"))
    return "sqlite:///state.db"


def _lock_row(store: Store) -> RunLock | None:
    with store.session() as session:
        return session.exec(select(RunLock)).first()


def _runs(store: Store) -> list[SyncRun]:
    with store.session() as session:
        return list(session.exec(select(SyncRun).order_by(col(SyncRun.started_at))))


def _pending(store: Store) -> dict[tuple[str, str], str]:
    with store.session() as session:
        rows = session.exec(select(WriteLedger).where(WriteLedger.status == "pending"))
        return {(row.object, row.record_id): row.values_hash for row in rows}


# (kill point, how Handoff is stopped there, what becomes of a held request once it is dead)
KILL_POINTS = {
    "mid-mirror": ("page", None),
    "between-mirror-and-write": ("stage:2", None),
    "mid-write-not-landed": ("push-before", "drop"),
    "mid-write-landed-unanswered": ("push-after", "answer"),
    "after-write-before-log": ("write:done", None),
}
TURNS = ("hubspot", "salesforce")
RERUN_TWICE = "mid-write-landed-unanswered"  # where a second rerun is also shown to write 0
CASES = [
    *[(crm, point, "sqlite") for crm in WRITTEN for point in KILL_POINTS],
    # every kill point on PostgreSQL too, the CRMs taking turns (HubSpot's mid-mirror: pages
    # committed on PostgreSQL's load path)
    *[(TURNS[n % 2], point, "postgresql") for n, point in enumerate(KILL_POINTS)],
]


@pytest.mark.parametrize(("crm", "point", "backend"), CASES)
def test_killed_then_rerun_leaves_the_crm_as_an_uninterrupted_run_does(
    crm: str,
    point: str,
    backend: str,
    org: Org,
    org_dir: Path,
    clean: Mapping[str, Outcome],
    spare: Spare,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    how, after_kill = KILL_POINTS[point]
    database = _database(backend, request)
    with served(crm, org, org_dir) as sandbox, Store.open(database) as store:
        _configure(crm, sandbox, database, monkeypatch)
        killed = _killed_at(sandbox, spare, how, after_kill)
        lock, in_flight = _lock_row(store), _pending(store)
        code, output = run_cli("sync")
        after, runs = _outcome(sandbox, store), {run.id: run for run in _runs(store)}
        if point == RERUN_TWICE:
            again_code, again = run_cli("sync")
            assert again_code == 0, again
            last = _runs(store)[-1]
            assert last.status == "succeeded" and last.counts["written"] == 0

    assert code == 0, output
    # the killed run left its lock row naming it; free at once, its process being gone
    assert lock is not None and lock.pid == killed
    # the run log tells what became of the killed run
    assert runs[lock.run_id].status == "failed" and ABANDONED in str(runs[lock.run_id].error)
    assert after.crm == clean[crm].crm  # record by record, field by field; no record added
    assert after.ledger == clean[crm].ledger  # every write settled ok, with the same values
    assert after.history == clean[crm].history  # one history row an account, none lost
    for key, values_hash in in_flight.items():  # a batch in flight is re-sent as it was
        assert after.ledger[key] == (values_hash, "ok")
    assert bool(in_flight) == how.startswith("push")


def _killed_at(sandbox: Served, spare: Spare, how: str, after_kill: str | None) -> int:
    """Start `handoff sync` (or the shell's code stopped at a point), kill it at ``how``; the
    pid it had."""
    crm, env = sandbox.crm, {SANDBOX_TOKEN_VARIABLE: TOKEN}
    if how in ("page", "push-before", "push-after"):
        hold = PAGE[crm] if how == "page" else PUSH[crm]
        sandbox.hold(**hold, when="after" if how == "push-after" else "before")
        process = spare.take(Path.cwd(), env, None)
        sandbox.held(process)
        killed = _kill(process)
        sandbox.release(drop=after_kill == "drop")
        return killed
    process = spare.take(Path.cwd(), env, how)
    assert process.stdout is not None
    assert process.stdout.readline() == "paused\n", _ended(process)
    return _kill(process)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_second_run_exits_locked_naming_the_first_and_runs_once_the_first_is_gone(
    backend: str,
    org: Org,
    org_dir: Path,
    spare: Spare,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = _database(backend, request)
    with served("salesforce", org, org_dir) as sandbox, Store.open(database) as store:
        _configure("salesforce", sandbox, database, monkeypatch)
        first = spare.take(Path.cwd(), {SANDBOX_TOKEN_VARIABLE: TOKEN}, "stage:1")
        assert first.stdout is not None and first.stdout.readline() == "paused\n", _ended(first)
        holder = _lock_row(store)
        locked_code, locked = run_cli("sync")
        _kill(first)
        if backend == "sqlite":
            # killed on another machine: this one cannot see its process, so it waits for the
            # lock to expire ([the ttl] after its last heartbeat), then takes it over
            _move_lock(store, host="worker-2.internal")
            expiring_code, expiring = run_cli("sync")
            assert expiring_code == 4 and "taken over after" in expiring, expiring
            _move_lock(store, expires_at=datetime.now(UTC) - timedelta(seconds=1))
        code, output = run_cli("sync")

    assert holder is not None and holder.pid == first.pid
    since = f"{holder.acquired_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    assert locked_code == 4, locked
    assert f"run {holder.run_id} on {holder.host} (pid {first.pid}) since {since}" in " ".join(
        locked.split()
    )
    assert code == 0, output


def _move_lock(store: Store, **values: Any) -> None:
    """Change the lock row as another host, or time passing, would have left it."""
    table = RunLock.__table__  # type: ignore[attr-defined]
    with store.session() as session:
        session.exec(update(table).values(**values))  # type: ignore[call-overload]
