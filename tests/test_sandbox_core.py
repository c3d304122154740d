"""The sandbox server core over real HTTP with a toy dialect: routing, accounting, faults."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import requests

from sandbox.faults import Fault, FaultError, FaultPlan, FaultRule, load_faults
from sandbox.http import LoopbackServer, Request, Response, Route, ServerLimits, json_response
from sandbox.tables import Table, TableSpec

TOKEN = "toy-token"
ADMIN_TOKEN = "toy-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class ToyDialect:
    """The smallest dialect: one public and two private routes, errors as {"error": ...}."""

    def routes(self) -> list[Route]:
        return [
            Route(
                "POST",
                r"/login",
                "login",
                lambda r: json_response(200, {"token": TOKEN}),
                public=True,
            ),
            Route(
                "GET",
                r"/items/(?P<item>\w+)",
                "items",
                lambda r: json_response(200, {"item": r.params["item"]}),
            ),
            Route("POST", r"/items", "items", lambda r: json_response(201, r.json())),
            Route("GET", r"/broken", "broken", _broken),
        ]

    def authenticate(self, request: Request) -> Response | None:
        return None if request.bearer() == TOKEN else json_response(401, {"error": "bad token"})

    def fault_response(self, fault: Fault, request: Request) -> Response:
        headers = {"Retry-After": str(int(fault.retry_after))} if fault.retry_after else {}
        return json_response(fault.status or 401, {"error": fault.kind}, headers)

    def not_found(self, request: Request) -> Response:
        return json_response(404, {"error": f"no {request.path}"})

    def decorate(self, request: Request, response: Response) -> None:
        response.headers["X-Toy"] = "1"


def _broken(request: Request) -> Response:
    raise ValueError("a sandbox bug's own words")


@contextmanager
def _serve(
    plan: FaultPlan | None = None, limits: ServerLimits | None = None
) -> Iterator[tuple[str, LoopbackServer]]:
    server = LoopbackServer(ToyDialect(), plan, admin_token=ADMIN_TOKEN, limits=limits)
    with server.running():
        yield server.base_url, server


@pytest.fixture
def toy() -> Iterator[tuple[str, LoopbackServer]]:
    with _serve() as served:
        yield served


def _get(
    base: str, path: str, token: str = TOKEN, session: requests.Session | None = None
) -> requests.Response:
    return (session or requests).get(
        base + path, headers={"Authorization": f"Bearer {token}"}, timeout=5
    )


def test_routes_answer_with_params_and_dialect_headers(toy: tuple[str, LoopbackServer]) -> None:
    base, _ = toy
    answer = _get(base, "/items/abc")
    assert answer.status_code == 200 and answer.json() == {"item": "abc"}
    assert answer.headers["X-Toy"] == "1"
    created = requests.post(
        base + "/items", json={"a": 1}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    assert created.status_code == 201 and created.json() == {"a": 1}


def test_authentication_is_the_dialects_and_public_routes_skip_it(
    toy: tuple[str, LoopbackServer],
) -> None:
    base, _ = toy
    assert _get(base, "/items/abc", token="wrong").json() == {"error": "bad token"}
    assert requests.post(base + "/login", timeout=5).json() == {"token": TOKEN}


def test_unknown_paths_get_the_dialects_not_found(toy: tuple[str, LoopbackServer]) -> None:
    base, _ = toy
    answer = _get(base, "/nope")
    assert answer.status_code == 404 and answer.json() == {"error": "no /nope"}


def test_request_counts_match_what_was_sent_and_admin_reports_them(
    toy: tuple[str, LoopbackServer],
) -> None:
    base, server = toy
    with requests.Session() as session:  # keep-alive: several requests on one connection
        for item in ("a", "b", "c"):
            _get(base, f"/items/{item}", session=session)
    requests.post(base + "/login", timeout=5)
    assert server.log.snapshot() == {"GET items": 3, "POST login": 1}
    report = requests.get(base + "/__sandbox/requests", headers=ADMIN, timeout=5).json()
    assert report == {"total": 4, "by_endpoint": {"GET items": 3, "POST login": 1}}
    requests.post(base + "/__sandbox/reset", headers=ADMIN, timeout=5)
    assert server.log.total() == 0


@pytest.mark.parametrize("token", [None, TOKEN, "wrong"])
def test_admin_routes_refuse_anyone_without_the_sandbox_token(
    toy: tuple[str, LoopbackServer], token: str | None
) -> None:
    base, server = toy
    _get(base, "/items/a")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    assert requests.get(base + "/__sandbox/requests", headers=headers, timeout=5).status_code == 401
    assert requests.post(base + "/__sandbox/reset", headers=headers, timeout=5).status_code == 401
    assert server.log.total() == 1


@pytest.mark.parametrize("length", ["abc", "-5", "1e3", "12, 12"])
def test_an_unreadable_content_length_is_refused_with_400(
    toy: tuple[str, LoopbackServer], length: str
) -> None:
    base, server = toy
    head = f"POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}"
    with _connect(base) as raw:
        raw.sendall(head.encode())
        assert _status(raw) == 400
    assert server.log.total() == 0


def test_a_body_past_the_cap_is_refused_with_413() -> None:
    with _serve(limits=ServerLimits(max_body=1_000)) as (base, server):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        small = requests.post(base + "/items", json={"a": "x" * 900}, headers=headers, timeout=5)
        large = requests.post(base + "/items", json={"a": "x" * 1_000}, headers=headers, timeout=5)
    assert (small.status_code, large.status_code) == (201, 413)
    assert server.log.snapshot() == {"POST items": 1}


def test_a_slow_client_is_cut_off_without_holding_up_the_others() -> None:
    with (
        _serve(limits=ServerLimits(header_seconds=0.5)) as (base, server),
        _connect(base) as silent,
        _connect(base) as trickling,
    ):
        started = time.perf_counter()
        trickling.sendall(b"GET /items/slow HTTP/1.1\r\n")
        answered = []
        while time.perf_counter() - started < 1.5 and _open(trickling):
            trickling.sendall(b"X-Slow: 1\r\n")
            answered.append(_get(base, "/items/fast").status_code)
            time.sleep(0.1)
        cut_after = time.perf_counter() - started
        assert not _open(silent)
    assert cut_after < 1.5 and answered and set(answered) == {200}
    assert server.log.snapshot() == {"GET items": len(answered)}


def test_a_handler_bug_answers_the_dialects_500_not_its_text(
    toy: tuple[str, LoopbackServer],
) -> None:
    base, _ = toy
    answer = _get(base, "/broken")
    assert answer.status_code == 500 and answer.json() == {"error": "status"}
    assert "bug" not in answer.text and "ValueError" not in answer.text


def test_an_edge_fault_is_a_page_from_the_front_not_the_dialects_json() -> None:
    with _serve(FaultPlan([FaultRule("edge", status=420, html=True, count=1)])) as (base, _):
        edge = _get(base, "/items/x")
        assert edge.status_code == 420 and edge.headers["Content-Type"].startswith("text/html")
        assert "X-Toy" not in edge.headers
        assert _get(base, "/items/x").status_code == 200


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    raw = socket.create_connection((host, int(port)), timeout=5)
    return raw


def _status(raw: socket.socket) -> int:
    return int(raw.recv(4096).split(b" ")[1])


def _open(raw: socket.socket) -> bool:
    """Whether the server still holds the connection (a closed one reads as end of stream)."""
    raw.settimeout(0.05)
    try:
        return raw.recv(1, socket.MSG_PEEK) != b""
    except TimeoutError:
        return True
    except OSError:
        return False
    finally:
        raw.settimeout(5)


def test_a_status_fault_fires_in_its_window() -> None:
    plan = FaultPlan([FaultRule("status", status=429, endpoint="items", after=1, count=2)])
    with _serve(plan) as (base, _):
        statuses = [_get(base, "/items/x").status_code for _ in range(5)]
    assert statuses == [200, 429, 429, 200, 200]


def test_a_status_fault_carries_retry_after_and_only_hits_its_endpoint() -> None:
    with _serve(FaultPlan([FaultRule("status", status=503, retry_after=3, endpoint="items")])) as (
        base,
        _,
    ):
        answer = _get(base, "/items/x")
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "3"
        assert requests.post(base + "/login", timeout=5).status_code == 200


def test_a_drop_fault_closes_the_connection_without_an_answer() -> None:
    with _serve(FaultPlan([FaultRule("drop", count=1)])) as (base, _):
        with pytest.raises(requests.ConnectionError):
            _get(base, "/items/x")
        assert _get(base, "/items/x").status_code == 200


def test_a_slow_fault_delays_but_answers() -> None:
    with _serve(FaultPlan([FaultRule("slow", seconds=0.3, count=1)])) as (base, _):
        started = time.perf_counter()
        assert _get(base, "/items/x").status_code == 200
        assert time.perf_counter() - started >= 0.3


def test_session_expiry_fires_once_after_n_requests() -> None:
    with _serve(FaultPlan([FaultRule("expire_session", after=2)])) as (base, _):
        statuses = [_get(base, "/items/x").status_code for _ in range(4)]
        assert statuses == [200, 200, 401, 200]


def test_locks_fail_a_record_the_given_number_of_times() -> None:
    plan = FaultPlan([FaultRule("lock", records=("001A",), times=2)])
    assert [plan.locked("001A") for _ in range(3)] == [True, True, False]
    assert not plan.locked("001B")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[fault]]\nkind = "boom"\n',
            "kind must be one of status, slow, drop, expire_session, lock",
        ),
        ('[[fault]]\nkind = "status"\nstatus = 200\n', "status must be an HTTP error status"),
        ('[[fault]]\nkind = "edge"\n', "status must be an HTTP error status"),
        ('[[fault]]\nkind = "limit"\nlimit = "hourly"\n', "limit must be one of daily, concurrent"),
        ('[[fault]]\nkind = "bulk_unsupported"\n', "objects must name the objects"),
        ('[[fault]]\nkind = "slow"\nsecs = 1\n', "unknown key(s) ['secs']"),
        ('[faults]\nkind = "slow"\n', "unknown section(s) ['faults']"),
        ("[[fault]\n", "faults.toml: "),
    ],
)
def test_a_bad_faults_file_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "faults.toml"
    path.write_text(text)
    with pytest.raises(FaultError) as error:
        load_faults(path)
    assert message in str(error.value)


def test_a_faults_file_loads_into_rules(tmp_path: Path) -> None:
    path = tmp_path / "faults.toml"
    path.write_text(
        '[[fault]]\nkind = "status"\nstatus = 429\nretry_after = 2\ncount = 3\n'
        '[[fault]]\nkind = "lock"\nrecords = ["001A"]\ntimes = 1\n'
        '[[fault]]\nkind = "limit"\nlimit = "concurrent"\nendpoint = "query"\n'
        '[[fault]]\nkind = "edge"\nstatus = 420\nhtml = true\n'
        '[[fault]]\nkind = "bulk_unsupported"\nobjects = ["Task"]\n'
    )
    plan = load_faults(path)
    assert plan.rules[0] == FaultRule("status", status=429, retry_after=2, count=3)
    assert plan.rules[2:4] == [
        FaultRule("limit", limit="concurrent", endpoint="query"),
        FaultRule("edge", status=420, html=True),
    ]
    assert plan.locked("001A") and not plan.locked("001A")
    assert plan.refuses_bulk("Task") and not plan.refuses_bulk("Account")


def _table() -> Table:
    frame = pl.DataFrame(
        {
            "Id": ["a", "b", "c"],
            "Score": [None, 2.0, None],
            "Modified": [datetime(2025, 1, 1, tzinfo=UTC)] * 3,
            "Deleted": [False] * 3,
        }
    )
    return Table(TableSpec("Account", "Id", "Modified", "Deleted"), frame)


def test_table_updates_stamp_modified_and_leave_old_snapshots_alone() -> None:
    table = _table()
    before = table.frame
    now = datetime(2026, 1, 1, tzinfo=UTC)
    table.update({"c": {"Score": 9.0}, "a": {"Score": 1.0}}, now)
    assert table.get(["a", "c"])["Score"].to_list() == [1.0, 9.0]
    assert table.get(["a", "b"])["Modified"].to_list() == [now, datetime(2025, 1, 1, tzinfo=UTC)]
    assert before["Score"].to_list() == [None, 2.0, None]


def test_table_update_of_a_missing_record_changes_nothing() -> None:
    table = _table()
    with pytest.raises(KeyError, match="no records"):
        table.update({"a": {"Score": 1.0}, "zz": {"Score": 2.0}}, datetime(2026, 1, 1, tzinfo=UTC))
    assert table.get(["a"])["Score"].to_list() == [None]


def test_table_insert_and_new_columns() -> None:
    table = _table()
    table.add_column("Tier__c", pl.String)
    table.insert(
        [{"Id": "d", "Score": 4.0, "Deleted": False, "Tier__c": "AE"}],
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert len(table) == 4 and table.get(["d"])["Tier__c"].to_list() == ["AE"]


def test_table_snapshot_keeps_what_it_saw_while_later_writes_land() -> None:
    table = _table()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    table.update({"a": {"Score": 1.0}}, now)
    paging = table.frame
    table.update({"a": {"Score": 5.0}, "b": {"Score": 6.0}}, now)
    assert table.get(["b", "a"])["Score"].to_list() == [6.0, 5.0]
    assert paging["Score"].to_list() == [1.0, 2.0, None]
    assert table.frame["Score"].to_list() == [5.0, 6.0, None]


def test_table_refuses_an_unknown_field_and_changes_nothing() -> None:
    table = _table()
    with pytest.raises(pl.exceptions.ColumnNotFoundError):
        table.update({"a": {"Score": 1.0, "Nope__c": "x"}}, datetime(2026, 1, 1, tzinfo=UTC))
    assert table.frame["Score"].to_list() == [None, 2.0, None]


def test_table_finds_records_where_a_restore_put_them() -> None:
    table = _table()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    table.update({"a": {"Score": 1.0}}, now)
    table.restore(table.frame.reverse())
    table.update({"a": {"Score": 3.0}}, now)
    assert table.frame["Id"].to_list() == ["c", "b", "a"]
    assert table.frame["Score"].to_list() == [None, 2.0, 3.0]


def test_table_batched_writes_end_as_if_applied_one_by_one() -> None:
    """Batches of writes and inserts across a table larger than what is kept apart before
    merging, read back between batches, end with the values written last."""
    rows = 10_000
    ids = [f"r{n}" for n in range(rows)]
    table = Table(
        TableSpec("Lead", "Id", "Modified", "Deleted"),
        pl.DataFrame(
            {
                "Id": ids,
                "Score": [0.0] * rows,
                "Tier": [None] * rows,
                "Modified": [datetime(2025, 1, 1, tzinfo=UTC)] * rows,
                "Deleted": [False] * rows,
            },
            schema_overrides={"Tier": pl.String},
        ),
    )
    expected = {i: (0.0, None) for i in ids}
    rng = random.Random(5)
    for batch in range(60):
        if batch % 20 == 10:
            new = [f"n{batch}-{k}" for k in range(50)]
            table.insert([{"Id": i, "Score": -1.0, "Deleted": False} for i in new], _at(batch))
            expected |= dict.fromkeys(new, (-1.0, None))
        picked = rng.sample(sorted(expected), 200)
        table.update({i: {"Score": float(batch), "Tier": f"t{batch}"} for i in picked}, _at(batch))
        expected |= dict.fromkeys(picked, (float(batch), f"t{batch}"))
        sample = rng.sample(sorted(expected), 20)
        got = table.get(sample)
        assert list(zip(got["Score"], got["Tier"], strict=True)) == [expected[i] for i in sample]
    final = table.frame
    assert final.height == len(expected) == rows + 150
    assert {r[0]: (r[1], r[2]) for r in final.select("Id", "Score", "Tier").iter_rows()} == expected


def _at(batch: int) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=batch)
