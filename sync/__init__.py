"""sync: the local state store of the CRM mirror, scores, routing, SLAs and sync runs.

The names below are read from `sync.state` and `sync.store` when first asked for (PEP 562), not
when a submodule is imported: `handoff.settings` imports `sync.config`, and a command that only
prints help or checks settings need not load the database layer (SQLAlchemy, SQLModel, Alembic
and our tables: about 0.7 s of `handoff`'s start).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sync.state import (
        DISPOSITIONS,
        PERSON_KINDS,
        RUN_ACTIONS,
        RUN_STAGES,
        RUN_STATUSES,
        SCHEMA_META_VERSION,
        SLA_STATUSES,
        USER_ROLES,
        Account,
        Activity,
        AppendOnlyError,
        Assignment,
        CurrentScore,
        Disposition,
        NaiveDatetimeError,
        Opportunity,
        Person,
        RunEvent,
        RunLock,
        SchemaMeta,
        SchemaVersionError,
        ScoreHistory,
        ScoringModelRow,
        SlaClock,
        StateError,
        StoreOpenError,
        SyncCursor,
        SyncRun,
        User,
        UTCDateTime,
        WriteLedger,
    )
    from sync.store import Store, canonical_value

_FROM_STORE = frozenset({"Store", "canonical_value"})
__all__ = [
    "DISPOSITIONS",
    "PERSON_KINDS",
    "RUN_ACTIONS",
    "RUN_STAGES",
    "RUN_STATUSES",
    "SCHEMA_META_VERSION",
    "SLA_STATUSES",
    "USER_ROLES",
    "Account",
    "Activity",
    "AppendOnlyError",
    "Assignment",
    "CurrentScore",
    "Disposition",
    "NaiveDatetimeError",
    "Opportunity",
    "Person",
    "RunEvent",
    "RunLock",
    "SchemaMeta",
    "SchemaVersionError",
    "ScoreHistory",
    "ScoringModelRow",
    "SlaClock",
    "StateError",
    "Store",
    "StoreOpenError",
    "SyncCursor",
    "SyncRun",
    "UTCDateTime",
    "User",
    "WriteLedger",
    "canonical_value",
]


def __dir__() -> list[str]:
    """The package's names, those not yet read among them (for ``dir`` and completion)."""
    return sorted({*globals(), *__all__})


def __getattr__(name: str) -> Any:
    """A name of `__all__`, from the module that defines it (imported on first use)."""
    if name not in __all__:
        raise AttributeError(f"module 'sync' has no attribute {name!r}")
    value = getattr(import_module("sync.store" if name in _FROM_STORE else "sync.state"), name)
    globals()[name] = value  # asked once: later lookups find it here
    return value
