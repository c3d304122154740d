"""Shared fixtures: a fresh state database per test, on SQLite and on PostgreSQL.

PostgreSQL is expected at 127.0.0.1:5432 (trust auth, database `test`; the one test that needs
text sorted by ICU's rules creates `test_icu_en_us` once and keeps it). When it is down the
PostgreSQL cases skip locally and fail in CI (where the `CI` environment variable is set).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from uuid import uuid4

import polars as pl
import psycopg
import pytest
from psycopg import sql

from sync.frames import ReadApart
from sync.store import Store

pytest_plugins = ["tests.sandbox_fixtures", "tests.cli_fixtures"]

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_DATABASE = "test"
# kept between runs, as the test database is: a database is dropped only after a checkpoint,
# which waits for every other test's writes to reach the disk (5-66 s on a busy machine)
PG_ICU_DATABASE = "test_icu_en_us"
PG_ROLES = ("postgres", "root")
PG_START_HINT = (
    f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} (database {PG_DATABASE!r}); start it "
    "with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
)
BACKENDS = ("sqlite", "postgresql")


def _conninfo(role: str, database: str = PG_DATABASE) -> str:
    return f"host={PG_HOST} port={PG_PORT} dbname={database} user={role}"


@cache
def _pg_role() -> str | None:
    """The first role that can connect to the test database, or None if PostgreSQL is down."""
    for role in PG_ROLES:
        try:
            with psycopg.connect(_conninfo(role), connect_timeout=3):
                return role
        except psycopg.OperationalError:
            continue
    return None


def require_pg_role() -> str:
    """The PostgreSQL role to test with; skips the test locally and fails it in CI if down."""
    role = _pg_role()
    if role is None:
        if os.environ.get("CI"):
            pytest.fail(PG_START_HINT)
        pytest.skip(PG_START_HINT)
    return role


def pg_url(schema: str | None = None, database: str = PG_DATABASE) -> str:
    """URL of the PostgreSQL test database (or ``database``), confined to `schema` when given."""
    url = f"postgresql+psycopg://{require_pg_role()}@{PG_HOST}:{PG_PORT}/{database}"
    return url if schema is None else f"{url}?options=-csearch_path%3D{schema}"


def _run_admin(statement: sql.Composable, database: str = PG_DATABASE) -> None:
    with psycopg.connect(_conninfo(require_pg_role(), database), autocommit=True) as connection:
        connection.execute(statement)


@pytest.fixture(name="pg_url")
def pg_url_fixture() -> str:
    """URL of the shared PostgreSQL test database (skips locally, fails in CI, when down)."""
    return pg_url()


@contextmanager
def pg_schema(database: str = PG_DATABASE) -> Iterator[str]:
    """URL of a PostgreSQL schema (of the test database, or ``database``) made for the block
    alone and dropped after it."""
    schema = f"t_{uuid4().hex}"
    _run_admin(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)), database)
    try:
        yield pg_url(schema, database)
    finally:
        _run_admin(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)), database)


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """URL of a PostgreSQL schema made for this test alone and dropped after it."""
    with pg_schema() as url:
        yield url


@pytest.fixture
def pg_icu_url() -> Iterator[str]:
    """URL of a PostgreSQL schema made for this test alone, in a database whose text sorts by
    ICU's English rules (as a server set up with ``en_US.UTF-8``, most installs' default, sorts
    it: ``a`` before ``B``); the shared test database sorts by code point, as Python does."""
    _icu_database()
    with pg_schema(PG_ICU_DATABASE) as url:
        yield url


@cache
def _icu_database() -> None:
    """`PG_ICU_DATABASE`, created when missing (by whichever test worker comes first); one of
    that name sorting otherwise fails the test, saying so."""
    # made by an earlier run, or by another worker just now
    with suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
        _run_admin(
            sql.SQL(
                "CREATE DATABASE {} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                "LOCALE 'C.UTF-8'"
            ).format(sql.Identifier(PG_ICU_DATABASE))
        )
    with psycopg.connect(_conninfo(require_pg_role())) as connection:
        provider, locale = connection.execute(
            "SELECT datlocprovider, daticulocale FROM pg_database WHERE datname = %s",
            (PG_ICU_DATABASE,),
        ).fetchone() or (None, None)
    if (provider, locale) != ("i", "en-US"):
        pytest.fail(f"database {PG_ICU_DATABASE} sorts by {provider}/{locale}, not ICU en-US")


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty state database of each backend, fresh for every test."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_schema_url"))
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def store(store_url: str, request: pytest.FixtureRequest) -> Iterator[Store]:
    """An opened state store on a fresh database, disposed after the test (on SQLite a copy of
    `sqlite_template`, at ``store_url``)."""
    if store_url.startswith("sqlite:///"):
        copy_template(request, Path(store_url.removeprefix("sqlite:///")))
    else:
        _clone_pg_template(store_url)
    with Store.open(store_url) as opened:
        yield opened


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite state database the migrations brought to head once a test process, closed (its
    write-ahead log folded in): a test's fresh database is a copy, not 21 migrations again
    (0.3-1 s a test)."""
    path = tmp_path_factory.mktemp("template") / "state.db"
    with Store.open(f"sqlite:///{path}"):
        pass
    assert [p.name for p in path.parent.iterdir()] == ["state.db"], "a closed store is one file"
    return path


def _clone_pg_template(url: str) -> None:
    """The empty schema of ``url`` given the tables, rows and sequences of one the migrations
    brought to head once a test process (`_pg_template`; 0.06 s against 0.4 s of migrations),
    or left empty for `Store.open` to migrate when pg_dump cannot dump this server."""
    template = _pg_template()
    if template is not None:
        statements, name = template
        schema = url.rpartition("search_path%3D")[2]
        _run_admin(sql.SQL(statements.replace(name, schema)))  # type: ignore[arg-type]


@cache
def _pg_template() -> tuple[str, str] | None:
    """The statements that build a schema at head (pg_dump's, its schema named ``t_...``), and
    that name; None where pg_dump is missing or refuses this server."""
    with pg_schema() as url:
        with Store.open(url):
            pass
        name = url.rpartition("search_path%3D")[2]
        command = ["pg_dump", "-h", PG_HOST, "-p", str(PG_PORT), "-U", require_pg_role()]
        command += ["-d", PG_DATABASE, "--schema", name, "--inserts", "--no-owner", "-x"]
        try:
            dumped = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return None
    # psql's own commands (\restrict) and the schema itself, which the test's fixture made
    lines = dumped.splitlines()
    kept = [line for line in lines if not line.startswith(("\\", "CREATE SCHEMA "))]
    return "\n".join(kept), name


def copy_template(request: pytest.FixtureRequest, path: Path) -> str:
    """A fresh state database at ``path``, a copy of `sqlite_template`; its URL."""
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def reads_apart(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of each read apart taken in the test (`ReadApart.frame`), -1 for a failed one."""
    taken: list[int] = []
    frame = ReadApart.frame

    def counted(self: ReadApart) -> pl.DataFrame | None:
        read = frame(self)
        taken.append(-1 if read is None else read.height)
        return read

    monkeypatch.setattr(ReadApart, "frame", counted)
    return taken
