"""Schema migrations of the state database (Alembic), run from code: users need no alembic.ini.

    state = schema_state(connection)   # empty, adoptable (pre-migrations), behind, current...
    before, after = upgrade(engine)     # to head; a pre-migrations database is adopted first

The models in `sync.state` stay the one definition of the schema. A new column or table: change
the model, run `python -m sync.migrations revision "what changed"` (autogenerates the next
numbered migration in versions/, batch mode so SQLite can ALTER), read it, and add by hand what
autogenerate cannot see (CHECK constraints, data moves). tests/test_migrations.py fails until
the migrations at head build exactly the models' schema on SQLite and PostgreSQL.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, create_engine, inspect, text
from sqlmodel.sql.sqltypes import AutoString

from sync.state import TABLES, SchemaMeta, SchemaVersionError, UTCDateTime, made_on

__all__ = [
    "LEGACY_REVISIONS",
    "SchemaState",
    "Status",
    "head_revision",
    "new_revision",
    "refusal",
    "run_environment",
    "schema_differences",
    "schema_metadata",
    "schema_state",
    "upgrade",
]

_HERE = Path(__file__).parent
# schema_meta version written by a release before migrations -> the revision with its layout
LEGACY_REVISIONS = {1: "0001", 2: "0002", 3: "0003"}
_VERSION_TABLE = "alembic_version"
# one migration at a time per schema: a transaction-level advisory lock on this key (PostgreSQL)
_MIGRATION_LOCK = text(
    "SELECT pg_advisory_xact_lock(hashtextextended('handoff:migrate:' || current_schema(), 0))"
)


class Status(StrEnum):
    """Where a state database stands against this release's migrations."""

    EMPTY = "empty"  # no tables yet: created at head on open
    ADOPTABLE = "adoptable"  # written by a release before migrations (schema_meta 1-3)
    BEHIND = "behind"  # at an older revision
    CURRENT = "current"  # at head
    AHEAD = "ahead"  # at a revision or schema version this release does not know
    FOREIGN = "foreign"  # holds some of our tables but no version at all


@dataclass(frozen=True)
class SchemaState:
    """A database's status, its Alembic revision and, before migrations, its schema_meta version."""

    status: Status
    revision: str | None = None
    legacy_version: int | None = None

    def __str__(self) -> str:
        if self.revision is not None:
            return f"revision {self.revision}"
        if self.legacy_version is not None:
            return f"schema version {self.legacy_version} (before migrations)"
        return "no schema"


def head_revision() -> str:
    """The newest revision this release knows."""
    head = _scripts().get_current_head()
    assert head is not None, "sync/migrations/versions holds no migration"
    return head


@cache
def schema_metadata() -> MetaData:
    """The models' tables (`sync.state.TABLES`) in a MetaData of their own: what to build."""
    metadata = MetaData()
    for table in TABLES:
        copy = table.to_metadata(metadata)
        # which database an index or the primary key is made on (`ddl_if`), which the copy
        # leaves out
        copy.primary_key._ddl_if = table.primary_key._ddl_if
        made_on = {index.name: index._ddl_if for index in table.indexes}
        for index in copy.indexes:
            index._ddl_if = made_on[index.name]
    return metadata


def schema_state(connection: Connection) -> SchemaState:
    """Read where the database on `connection` stands, without changing it."""
    names = set(inspect(connection).get_table_names())
    if _VERSION_TABLE in names:
        revision = MigrationContext.configure(connection).get_current_revision()
        return SchemaState(_revision_status(revision), revision=revision)
    if SchemaMeta.__tablename__ in names:
        version = connection.execute(
            text("SELECT schema_version FROM schema_meta WHERE id = 1")
        ).scalar()
        if version is None:
            return SchemaState(Status.FOREIGN)
        status = Status.ADOPTABLE if version in LEGACY_REVISIONS else Status.AHEAD
        return SchemaState(status, legacy_version=version)
    ours = {table.name for table in TABLES}
    return SchemaState(Status.FOREIGN if names & ours else Status.EMPTY)


def refusal(state: SchemaState, url: str) -> SchemaVersionError:
    """The error that says why this release will not use the database at `url`, and what to do."""
    head = head_revision()
    if state.status in (Status.ADOPTABLE, Status.BEHIND):
        return SchemaVersionError(
            f"state database {url} is at {state}, older than this Handoff's revision {head}: "
            "back it up, then run `handoff state upgrade` (it migrates in place, keeping every "
            "row, the write ledger and score history included)"
        )
    if state.status is Status.AHEAD:
        return SchemaVersionError(
            f"state database {url} is at {state}, newer than this Handoff knows (up to revision "
            f"{head}): it was upgraded by a later release; run that release or a newer one"
        )
    return SchemaVersionError(
        f"state database {url} holds Handoff tables but no schema version: it is not a state "
        "database this Handoff made; point [state] database_url at a new database"
    )


def upgrade(engine: Engine, revision: str = "head") -> tuple[SchemaState, SchemaState]:
    """Migrate the database to head in one transaction; return where it stood before and after.

    A database of a release before migrations is first stamped at the revision matching its
    schema_meta version, then upgraded like any other. An empty one is created at head. A test
    of a migration's data moves first builds the database at the `revision` before it.
    """
    url = engine.url.render_as_string(hide_password=True)
    with _migration_connection(engine) as connection:
        before = schema_state(connection)
        if before.status in (Status.AHEAD, Status.FOREIGN):
            raise refusal(before, url)
        config = _config(connection)
        if before.legacy_version is not None:  # adoptable: AHEAD was refused above
            command.stamp(config, LEGACY_REVISIONS[before.legacy_version])
        if before.status is not Status.CURRENT:
            command.upgrade(config, revision)
        return before, schema_state(connection)


def schema_differences(connection: Connection) -> list[Any]:
    """What autogenerate finds between the database and the models (empty when they agree)."""
    context = MigrationContext.configure(connection, opts=_compare_options(connection))
    return list(compare_metadata(context, schema_metadata()))


def run_environment(context: EnvironmentContext) -> None:
    """What env.py does: run migrations on the caller's connection, in the caller's transaction."""
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=schema_metadata(),
        render_as_batch=True,  # SQLite's ALTER TABLE cannot change a column: copy-and-move
        **_compare_options(connection),
    )
    with context.begin_transaction():
        context.run_migrations()


def new_revision(message: str) -> Path:
    """Autogenerate the next numbered migration from the models' changes; return its file."""
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{Path(scratch) / 'head.db'}")
        try:
            upgrade(engine)
            with engine.begin() as connection:
                rev_id = f"{int(head_revision()) + 1:04d}"
                script = command.revision(
                    _config(connection), message, autogenerate=True, rev_id=rev_id
                )
        finally:
            engine.dispose()
    assert script is not None and not isinstance(script, list)
    return Path(script.path)


@cache
def _scripts() -> ScriptDirectory:
    """The migration scripts shipped in this package."""
    return ScriptDirectory.from_config(_config(None))


def _revision_status(revision: str | None) -> Status:
    """CURRENT at head, BEHIND at a known older revision, AHEAD at one this release lacks."""
    if revision is None:
        return Status.FOREIGN
    if revision == head_revision():
        return Status.CURRENT
    known = {script.revision for script in _scripts().walk_revisions()}
    return Status.BEHIND if revision in known else Status.AHEAD


def _config(connection: Connection | None) -> Config:
    """Alembic's configuration, built in code: the scripts here, the caller's connection."""
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


def _compare_options(connection: Connection) -> dict[str, Any]:
    """How autogenerate compares and renders: column types too, our types as plain SQLAlchemy,
    and only what the models create on the connection's database (an index made on one
    database only, `ddl_if`)."""

    def include_object(item: Any, name: str, kind: str, reflected: bool, compare_to: Any) -> bool:
        return reflected or made_on(item, connection.dialect.name)

    return {"compare_type": True, "render_item": _render_item, "include_object": include_object}


def _render_item(kind: str, item: Any, autogen_context: Any) -> str | bool:
    """Render our column types as plain SQLAlchemy, so a migration never imports today's models."""
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if kind == "type" and isinstance(item, AutoString):
        return "sa.String()"
    return False


@contextmanager
def _migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in one transaction that only one migration at a time may hold; committed.

    SQLite: foreign keys off (a batch table copy would otherwise cascade or fail), checked before
    commit, as SQLite's own ALTER TABLE procedure says (https://sqlite.org/lang_altertable.html).
    """
    with engine.connect() as connection:
        if engine.dialect.name != "sqlite":
            connection.execute(_MIGRATION_LOCK)
            yield connection
            connection.commit()
            return
        try:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield connection
            _check_foreign_keys(connection)
            connection.commit()
        finally:
            connection.invalidate()  # never hand a connection with foreign keys off to the pool


def _check_foreign_keys(connection: Connection) -> None:
    """Raise if the migration left rows whose foreign keys point nowhere (SQLite)."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise SchemaVersionError(
            f"migration left {len(broken)} rows with broken references: {broken[:3]}"
        )
