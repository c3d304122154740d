"""The sync run as the shell starts it: its settings gathered from `Settings`.

`sync` cannot read `handoff.settings`, so the shell hands the run a small frozen `RunConfig`,
and takes the org's run lock under `lock_key` around it (`run_locked`).
"""

from __future__ import annotations

from datetime import datetime
from typing import NoReturn
from uuid import uuid4

import typer

from handoff.crm import CrmConnection, schema_spec
from handoff.progress import StageProgress
from handoff.settings import Settings
from handoff.shell import console, fail, progress_console
from sync import Store
from sync.lock import Holder, LockHeld, LockLost, run_lock
from sync.run import EXIT_CODES, RunConfig, RunReport, StateOfAnotherCrm, run_sync
from sync.scoring_state import ScoringSetup

__all__ = ["fail_another_crm", "lock_key", "run_config", "run_locked", "scoring_setup"]


def scoring_setup(settings: Settings) -> ScoringSetup:
    """What scoring reads from the settings."""
    return ScoringSetup(
        tiers=settings.tiers,
        model=settings.scoring,
        signals=tuple(settings.signals),
        fit=tuple(settings.fit),
        disqualifiers=tuple(settings.disqualifiers),
    )


def run_config(settings: Settings) -> RunConfig:
    """What one sync run needs from the settings."""
    return RunConfig(
        scoring=scoring_setup(settings),
        matching=settings.matching,
        min_score_change=settings.sync.min_score_change,
        full_resync_hours=settings.sync.full_resync_hours,
        event_retention_days=settings.sync.event_retention_days,
        schema=schema_spec(settings),
    )


def lock_key(settings: Settings, crm: CrmConnection) -> str:
    """The org a run locks: the connector and where its org is.

    A Salesforce org by its instance (or login domain); a HubSpot portal by its API host, since
    one state database serves one portal (its Hub ID would cost a call this release does not
    make); a sandbox by its org directory, else its URL.
    """
    connector = crm.connector.crm
    if crm.lasting is not None:
        return f"{connector}:sandbox:{crm.lasting.org or crm.lasting.url}"
    if crm.sandbox is not None:
        return f"{connector}:sandbox:{crm.sandbox.base_url}"
    if connector == "hubspot":
        return f"hubspot:{settings.hubspot.host}"
    salesforce = settings.salesforce
    return f"salesforce:{salesforce.instance_url or salesforce.login_domain}"


def run_locked(
    settings: Settings,
    crm: CrmConnection,
    store: Store,
    now: datetime,
    full: bool | str,
    dry_run: bool,
) -> RunReport:
    """One run holding the org's run lock, with progress on stderr; exit 4 (locked) naming the
    holder when another run has the lock, 1 when this run loses it or the state database holds
    another CRM's state."""
    run_id = uuid4().hex
    try:
        with (
            run_lock(store, lock_key(settings, crm), Holder.this_process(run_id)) as lock,
            StageProgress(progress_console) as progress,
        ):
            return run_sync(
                run_config(settings),
                crm.connector,
                store,
                now,
                full=full,
                dry_run=dry_run or settings.sync.dry_run,
                progress=progress,
                run_id=run_id,
                heartbeat=lock.heartbeat,
            )
    except LockHeld as held:
        console.print(str(held), soft_wrap=True)
        raise typer.Exit(EXIT_CODES["locked"]) from held
    except LockLost as lost:
        fail([str(lost)])
    except StateOfAnotherCrm as other:
        fail_another_crm(other, store)


def fail_another_crm(other: StateOfAnotherCrm, store: Store) -> NoReturn:
    """Exit 1 for a state database holding another CRM's state, saying how to give this CRM
    one of its own."""
    fail(
        [
            f"{other}.",
            f"Give {other.crm} a state database of its own: [state] database_url in the "
            f"settings, or HANDOFF_STATE__DATABASE_URL=sqlite:///handoff-{other.named}.db "
            f"before the command; or {_afresh(store)} (its {other.held} state goes with it: "
            f"a {other.held} run on a new database starts as a first run).",
        ]
    )


def _afresh(store: Store) -> str:
    """How to start the state database afresh, said for its kind."""
    if store.dialect == "sqlite":
        return f"move {store.url} aside"
    return f"empty {store.url} (or give [state] database_url a new database)"
