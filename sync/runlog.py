"""The run log's decisions and housekeeping: is this run a full re-pull, and which per-record
events have outlived their retention.

    reason = full_resync_reason(session, "hubspot", now, every_hours=168)
    forgotten = forget_events(session, now, retention_days=90)

Both read only the run log (`sync_run`, `run_event`), never the clock: ``now`` is the run's.
Run summaries are kept for good; only per-record events expire.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, delete, select

from sync.state import RunEvent, SyncRun

__all__ = ["FORCED", "forget_events", "full_resync_reason", "last_full_run", "runs_newest_first"]

FORCED = "asked for (--full)"
_LOOK_BACK = 50  # full runs read to skip dry runs (a dry run re-pulls but moves no cursor)


def runs_newest_first(session: Session, limit: int, prefix: str | None = None) -> list[SyncRun]:
    """Recent runs in the order they started, newest first; optionally those whose id starts
    with ``prefix``."""
    statement = select(SyncRun).order_by(col(SyncRun.seq).desc()).limit(limit)
    if prefix is not None:
        statement = statement.where(col(SyncRun.id).startswith(prefix))
    return list(session.exec(statement))


def last_full_run(session: Session, connector: str) -> SyncRun | None:
    """The latest full re-pull of ``connector`` that completed (not a dry run)."""
    statement = (
        select(SyncRun)
        .where(SyncRun.connector == connector, col(SyncRun.full).is_(True))
        .where(SyncRun.status == "succeeded")
        .order_by(col(SyncRun.seq).desc())
        .limit(_LOOK_BACK)
    )
    return next((run for run in session.exec(statement) if not run.counts.get("dry_run")), None)


def full_resync_reason(
    session: Session, connector: str, now: datetime, every_hours: int, *, forced: bool = False
) -> str | None:
    """Why this run re-pulls every record, or None for an incremental run.

    Full when asked for, when no full re-pull of ``connector`` has completed yet, or when the
    last one started ``every_hours`` or more before ``now`` (`[sync] full_resync_hours`).
    """
    if forced:
        return FORCED
    last = last_full_run(session, connector)
    if last is None:
        return "no full re-pull has completed yet"
    if now - last.started_at >= timedelta(hours=every_hours):
        return (
            f"the last full re-pull started {last.started_at:%d %b %Y %H:%M} UTC, "
            f"{every_hours} h or more ago ([sync] full_resync_hours)"
        )
    return None


def forget_events(session: Session, now: datetime, retention_days: int) -> int:
    """Delete per-record events older than ``retention_days`` before ``now``; how many."""
    cutoff = now - timedelta(days=retention_days)
    result = session.exec(delete(RunEvent).where(col(RunEvent.at) < cutoff))
    return int(result.rowcount or 0)
