"""The one HTTP policy and error mapping, with faked answers (`responses`) and a fake clock."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
import requests
import responses
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationsError
from hubspot.crm.objects.exceptions import ApiException as ObjectsError
from hubspot.crm.owners.exceptions import ApiException as OwnersError
from hubspot.crm.properties.exceptions import ApiException as PropertiesError
from hubspot.events.exceptions import ApiException as EventsError
from pydantic import SecretStr

from connectors.budget import Budget
from connectors.config import HubSpotSettings, SalesforceSettings
from connectors.errors import (
    AuthError,
    BudgetExhausted,
    Conflict,
    ConnectorError,
    DailyLimitReached,
    FatalError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PaginationError,
    RetriableError,
    TransportError,
    api_error,
    classify,
    no_answer,
    record_status,
)
from connectors.http import HttpPolicy, PageTokens, RetrySettings
from connectors.hubspot_api import HubSpotApi
from connectors.protocol import Cursor, Tombstone, WriteResult
from connectors.salesforce import SalesforceConnector
from connectors.salesforce_api import SalesforceApi
from connectors.streams import stamp

INSTANCE = "https://example.my.salesforce.com"
BASE = f"{INSTANCE}/services/data/v59.0/"


class FakeClock:
    """Seconds that move only when the policy sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _policy(clock: FakeClock, share: float = 0.25) -> HttpPolicy:
    return HttpPolicy(RetrySettings(), budget=Budget(share), sleep=clock.sleep, clock=clock)


def _salesforce_settings() -> SalesforceSettings:
    return SalesforceSettings(
        auth="session", instance_url=INSTANCE, session_id=SecretStr("00Dx0000!session")
    )


def _sf_error(code: str, message: str = "refused") -> list[dict[str, Any]]:
    return [{"errorCode": code, "message": message, "fields": []}]


DAILY_LIMIT = "TotalRequests Limit exceeded."
CONCURRENT_LIMIT = "ConcurrentPerOrgLongTxn Limit exceeded."


@pytest.mark.parametrize(
    ("status", "code", "message", "verdict"),
    [
        (None, None, "", "retriable"),
        (429, "REQUEST_LIMIT_EXCEEDED", "", "retriable"),
        (503, "SERVER_UNAVAILABLE", "", "retriable"),
        (500, None, "", "retriable"),
        (406, None, "", "retriable"),
        (420, None, "<html>We are setting things up.</html>", "retriable"),
        (400, "UNABLE_TO_LOCK_ROW", "", "retriable"),
        (409, "CONCURRENT_MODIFICATION", "", "retriable"),
        (403, "REQUEST_LIMIT_EXCEEDED", CONCURRENT_LIMIT, "retriable"),
        (403, "REQUEST_LIMIT_EXCEEDED", DAILY_LIMIT, "stop"),
        (429, "DAILY", "You have reached your daily limit.", "stop"),
        (401, "INVALID_SESSION_ID", "", "auth"),
        (401, "EXPIRED_AUTHENTICATION", "", "auth"),
        (400, "MALFORMED_QUERY", "", "fatal"),
        (400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "", "fatal"),
        (400, "INVALIDENTITY", "Entity 'Lead' is not supported by the Bulk API.", "fatal"),
        (403, "INSUFFICIENT_ACCESS", "", "fatal"),
        (404, "NOT_FOUND", "", "fatal"),
    ],
)
def test_one_table_decides_retriable_auth_fatal_or_stop(
    status: int | None, code: str | None, message: str, verdict: str
) -> None:
    assert classify(status, code, message) == verdict


@pytest.mark.parametrize(
    ("status", "code", "message", "kind"),
    [
        (400, "INVALID_FIELD", "no", InvalidRequest),
        (403, "INSUFFICIENT_ACCESS", "no", Forbidden),
        (404, "NOT_FOUND", "no", NotFound),
        (409, "CONFLICT", "no", Conflict),
        (422, None, "no", FatalError),
        (401, "INVALID_SESSION_ID", "no", AuthError),
        (429, None, "no", RetriableError),
        (502, None, "no", RetriableError),
        (403, "REQUEST_LIMIT_EXCEEDED", CONCURRENT_LIMIT, RetriableError),
        (403, "REQUEST_LIMIT_EXCEEDED", DAILY_LIMIT, DailyLimitReached),
    ],
)
def test_error_answers_become_exceptions_by_status(
    status: int, code: str, message: str, kind: type
) -> None:
    assert type(api_error(status, code, message)) is kind


def test_the_daily_limit_stops_a_run_as_its_own_budget_does() -> None:
    refused = api_error(403, "REQUEST_LIMIT_EXCEEDED", DAILY_LIMIT)

    assert isinstance(refused, BudgetExhausted) and refused.results == ()
    assert (refused.status, refused.code, refused.message) == (
        403,
        "REQUEST_LIMIT_EXCEEDED",
        DAILY_LIMIT,
    )


def test_a_record_error_is_retriable_only_when_the_crm_says_so() -> None:
    assert record_status("UNABLE_TO_LOCK_ROW") == "retriable"
    assert record_status("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST") == "permanent"
    assert record_status(None) == "permanent"


@responses.activate
@pytest.mark.parametrize(
    ("status", "code", "kind", "sent"),
    [
        (400, "MALFORMED_QUERY", InvalidRequest, 1),
        (404, "NOT_FOUND", NotFound, 1),
        (403, "INSUFFICIENT_ACCESS", Forbidden, 1),
        (401, "INVALID_SESSION_ID", AuthError, 1),  # a session id cannot log in again
        (500, "UNKNOWN_EXCEPTION", RetriableError, RetrySettings().attempts),
    ],
)
def test_salesforce_answers_map_to_our_errors_and_only_retriable_ones_repeat(
    clock: FakeClock, status: int, code: str, kind: type, sent: int
) -> None:
    responses.get(BASE + "limits", json=_sf_error(code, "it went wrong"), status=status)
    api = SalesforceApi(_salesforce_settings(), _policy(clock))

    with pytest.raises(kind) as raised:
        api.rest("limits")

    assert (raised.value.code, raised.value.message) == (code, "it went wrong")
    assert len(responses.calls) == sent


_EDGE_PAGE = (
    b"<html><head><title>Setting up</title><style>p {color: red}</style></head>"
    b"<body><p>We are setting things up. This process can take a few minutes.</p></body></html>"
)


@responses.activate
@pytest.mark.parametrize(
    ("status", "body", "shown"),
    [(406, b"", "(no body)"), (420, _EDGE_PAGE, "We are setting things up.")],
)
def test_an_edge_answer_is_retried_and_its_page_read_as_text(
    clock: FakeClock, status: int, body: bytes, shown: str
) -> None:
    responses.get(BASE + "limits", body=body, status=status, content_type="text/html")
    api = SalesforceApi(_salesforce_settings(), _policy(clock))

    with pytest.raises(RetriableError) as raised:
        api.rest("limits")

    assert raised.value.message.startswith(shown) and "<" not in raised.value.message
    assert "color" not in raised.value.message
    assert len(responses.calls) == RetrySettings().attempts


_SOAP_FAULT = (
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
    'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault>'
    "<faultcode>UNSUPPORTED_CLIENT</faultcode><faultstring>UNSUPPORTED_CLIENT: TLS 1.0 has "
    "been disabled in this organization.</faultstring></soapenv:Fault></soapenv:Body>"
    "</soapenv:Envelope>"
)


@responses.activate
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_SOAP_FAULT, "UNSUPPORTED_CLIENT: TLS 1.0 has been disabled in this organization."),
        ("<html><body><h1>Maintenance</h1></body></html>", "Maintenance"),
    ],
)
def test_a_login_failure_shows_salesforces_reason_not_a_template(
    clock: FakeClock, body: str, reason: str
) -> None:
    responses.post("https://login.salesforce.com/services/Soap/u/59.0", body=body, status=500)
    settings = SalesforceSettings(
        auth="password",
        username="admin@example.com",
        password=SecretStr("pw"),
        security_token=SecretStr("token"),
    )

    with pytest.raises(AuthError) as refused:
        SalesforceApi(settings, _policy(clock))

    assert str(refused.value).endswith(f"Salesforce refused the login: {reason}")
    assert "{content}" not in str(refused.value)


@responses.activate
def test_a_private_key_that_is_not_pem_stops_before_any_call(clock: FakeClock) -> None:
    settings = SalesforceSettings(
        auth="jwt", username="a@b.example", client_id="c", private_key=SecretStr("s3cr3t-pem")
    )

    with pytest.raises(ConnectorError) as refused:
        SalesforceApi(settings, _policy(clock))

    assert "HANDOFF_SALESFORCE_PRIVATE_KEY" in str(refused.value)
    assert "s3cr3t" not in str(refused.value) and not responses.calls


@responses.activate
def test_retry_after_is_waited_out_and_every_request_has_a_timeout(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    responses.get(
        BASE + "limits",
        json=_sf_error("SERVER_UNAVAILABLE"),
        status=503,
        headers={"Retry-After": "7"},
    )
    responses.get(BASE + "limits", json={"DailyApiRequests": {}})
    policy = _policy(clock)
    api = SalesforceApi(_salesforce_settings(), policy)

    with caplog.at_level(logging.INFO, "connectors.http"):
        assert api.rest("limits") == {"DailyApiRequests": {}}
    assert sum(clock.slept) >= 7 and policy.retries == 1
    assert all(call.request.req_kwargs["timeout"] == (10.0, 120.0) for call in responses.calls)
    # the retry said in the log (`[logging] level` INFO), with the wait and the CRM's answer
    (said,) = [r.getMessage() for r in caplog.records if r.name == "connectors.http"]
    assert said.startswith("retry 1 in 7.0 s: ") and "503" in said, said


@responses.activate
@pytest.mark.parametrize(
    "failure", [requests.ConnectTimeout("slow"), requests.ConnectionError("reset by peer")]
)
def test_timeouts_and_dropped_connections_are_retried(clock: FakeClock, failure: Exception) -> None:
    responses.get(BASE + "limits", body=failure)
    responses.get(BASE + "limits", json={})
    policy = _policy(clock)

    assert SalesforceApi(_salesforce_settings(), policy).rest("limits") is None
    assert policy.retries == 1


@responses.activate
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (
            '{"records": [{"Id": "00Q1", "Name": "Zo\\u00eb \u00d6", "N": 12.5, '
            '"M": 123456789012345678}]}',
            "application/json;charset=UTF-8",
        ),
        ('{"x": 1e400, "y": [1, 2.0]}', "application/json"),  # beyond a double: json's inf
        ('{"Name": "Zo\u00eb"}', "application/json;charset=ISO-8859-1"),  # not UTF-8
    ],
)
def test_a_salesforce_answer_reads_as_json_reads_it(
    clock: FakeClock, body: str, content_type: str
) -> None:
    encoding = "latin-1" if "8859" in content_type else "utf-8"
    responses.get(BASE + "limits", body=body.encode(encoding), content_type=content_type)

    answer = SalesforceApi(_salesforce_settings(), _policy(clock)).rest("limits")

    assert answer == json.loads(body) and type(answer) is dict
    assert repr(answer) == repr(json.loads(body))  # 12.5 a float, 18 digits an int, inf kept


@responses.activate
def test_retries_are_capped(clock: FakeClock) -> None:
    responses.get(BASE + "limits", body=requests.ReadTimeout("slow"))

    with pytest.raises(TransportError):
        SalesforceApi(_salesforce_settings(), _policy(clock)).rest("limits")
    assert len(responses.calls) == RetrySettings().attempts


@responses.activate
def test_the_run_stops_before_passing_its_share_of_the_daily_limit(clock: FakeClock) -> None:
    responses.get(BASE + "limits", json={}, headers={"Sforce-Limit-Info": "api-usage=3/40"})
    api = SalesforceApi(_salesforce_settings(), _policy(clock, share=0.25))

    for _ in range(10):
        api.rest("limits")
    with pytest.raises(BudgetExhausted):
        api.rest("limits")
    assert len(responses.calls) == 10  # the eleventh call was never sent


def _describes(objects: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    """Answer every ``POST composite`` with each subrequested object's describe (its fields from
    ``objects``) or, for an object not there, Salesforce's 404; the bodies sent, for reading."""
    sent: list[dict[str, Any]] = []

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body or b"{}")
        sent.append(body)
        results = [_described(sub, objects) for sub in body["compositeRequest"]]
        return 200, {}, json.dumps({"compositeResponse": results})

    responses.add_callback(responses.POST, BASE + "composite", callback=answer)
    return sent


def _described(sub: Mapping[str, Any], objects: Mapping[str, list[str]]) -> dict[str, Any]:
    """One describe subrequest's result."""
    name = sub["url"].split("/")[-2]
    found = name in objects
    body = {"name": name, "fields": [{"name": f} for f in objects.get(name, [])]}
    return {
        "body": body if found else _sf_error("NOT_FOUND", "The requested resource does not exist"),
        "httpHeaders": {},
        "httpStatusCode": 200 if found else 404,
        "referenceId": sub["referenceId"],
    }


def _query_answers(rows: list[dict[str, Any]]) -> None:
    for resource in ("query", "queryAll"):
        responses.get(
            re.compile(re.escape(BASE + resource + "/") + ".*"),
            json={"totalSize": len(rows), "done": True, "records": rows},
        )


@responses.activate
def test_a_salesforce_merge_arrives_as_a_merged_tombstone(clock: FakeClock) -> None:
    fields = ["Id", "SystemModstamp", "IsDeleted", "MasterRecordId", "Name", "Type"]
    _describes({"Account": fields})
    loser = {"Id": "001A", "SystemModstamp": "2026-11-02T10:00:00.000+0000", "IsDeleted": True}
    _query_answers([loser | {"MasterRecordId": "001B"}])
    connector = SalesforceConnector(_salesforce_settings(), policy=_policy(clock))

    since = Cursor(stamp("2026-11-01T00:00:00+00:00"))
    (tombstone, _checkpoint, summary) = list(connector.pull("Account", since))

    assert tombstone == Tombstone(
        "Account", "001A", stamp("2026-11-02T10:00:00+00:00"), "merged", "001B"
    )
    assert "MasterRecordId" in responses.calls[1].request.url
    assert (summary.tombstones, summary.calls) == (1, 2)  # the describes and the query


STAMPED = ["Id", "SystemModstamp", "LastModifiedDate", "CreatedDate", "IsDeleted"]


@responses.activate
def test_every_streams_object_is_described_in_one_composite_call(clock: FakeClock) -> None:
    connector = SalesforceConnector(_salesforce_settings(), policy=_policy(clock))
    sent = _describes({stream.path: STAMPED for stream in connector.streams.values()})
    _query_answers([])

    for stream in connector.streams:
        list(connector.pull(stream, Cursor(stamp("2026-11-01T00:00:00+00:00"))))

    (body,) = sent
    paths = list(dict.fromkeys(stream.path for stream in connector.streams.values()))
    assert body["allOrNone"] is False
    assert [
        (sub["method"], sub["url"], sub["referenceId"]) for sub in body["compositeRequest"]
    ] == [("GET", f"/services/data/v59.0/sobjects/{path}/describe", path) for path in paths]
    assert connector.usage().calls == 1 + len(connector.streams)  # one query a stream


@responses.activate
def test_an_object_the_org_lacks_fails_only_its_own_pull(clock: FakeClock) -> None:
    connector = SalesforceConnector(_salesforce_settings(), policy=_policy(clock))
    present = {s.path: STAMPED for s in connector.streams.values() if s.path != "CampaignMember"}
    sent = _describes(present)
    _query_answers([])

    with pytest.raises(NotFound) as refused:
        list(connector.pull("CampaignMember"))
    summaries = [list(connector.pull(stream))[-1] for stream in ("Account", "Lead")]

    assert refused.value.code == "NOT_FOUND"
    assert [summary.records for summary in summaries] == [0, 0]
    with pytest.raises(NotFound):  # remembered: not described again
        list(connector.pull("CampaignMember"))
    assert len(sent) == 1


def _hubspot_api(clock: FakeClock) -> HubSpotApi:
    return HubSpotApi(HubSpotSettings(token=SecretStr("pat-na1-test")), _policy(clock))


def _raising(error: Exception) -> Any:
    def do_search(**kwargs: Any) -> Any:
        raise error

    return do_search


def _hubspot_error(
    kind: type, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Exception:
    error = kind(status=status, reason="refused")
    error.body = json.dumps(body)
    error.headers = dict(headers or {})
    return error


@pytest.mark.parametrize(
    "kind", [ObjectsError, PropertiesError, OwnersError, AssociationsError, EventsError]
)
@pytest.mark.parametrize(
    ("status", "body", "ours", "retry_after"),
    [
        (429, {"errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}, RetriableError, 2),
        (429, {"errorType": "RATE_LIMIT", "policyName": "DAILY"}, DailyLimitReached, 2),
        (400, {"category": "VALIDATION_ERROR", "message": "bad value"}, InvalidRequest, None),
        (404, {"category": "OBJECT_NOT_FOUND"}, NotFound, None),
    ],
)
def test_every_hubspot_sub_package_error_maps_to_ours(
    clock: FakeClock,
    kind: type,
    status: int,
    body: Mapping[str, Any],
    ours: type,
    retry_after: float | None,
) -> None:
    api = _hubspot_api(clock)
    headers = {"Retry-After": str(retry_after)} if retry_after else {}

    with pytest.raises(ours) as raised:
        api.call(_raising(_hubspot_error(kind, status, body, headers)))

    assert raised.value.retry_after == retry_after
    assert raised.value.code == (body.get("policyName") or body.get("category"))


@pytest.mark.parametrize(
    "body",
    [
        '{"results": [{"id": "51", "properties": {"firstname": "Zo\\u00eb \u00d6", "n": "12.5"}}],'
        ' "paging": {"next": {"after": "52"}}, "at": 1764547200000, "x": 12.5}',
        '{"x": 1e400, "y": NaN}',  # beyond a double, not a number: json's inf and nan
        '{"name": "\\ud800"}',  # a lone surrogate
        '\ufeff{"results": []}',  # a byte order mark
    ],
)
def test_a_hubspot_answer_reads_as_json_reads_it(clock: FakeClock, body: str) -> None:
    def get_page(**kwargs: Any) -> Any:
        return SimpleNamespace(data=body.encode(), headers={})

    answer = _hubspot_api(clock).call(get_page)

    assert repr(answer) == repr(json.loads(body.encode())) and type(answer) is dict


@pytest.fixture
def portal() -> Iterator[Any]:
    """A local HTTP server standing in for HubSpot (hubspot-api-client speaks urllib3, which
    `responses` does not reach): it answers each request with the next of ``portal.answers``
    (status, JSON) and keeps what it was sent in ``portal.sent`` (headers, body)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            server.sent.append((dict(self.headers), body))
            status, answer = server.answers.pop(0)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.sent, server.answers, server.clients = [], [], []
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()
    for api in server.clients:  # their kept-alive connections
        api.batch.api_client.rest_client.pool_manager.clear()


def _portal_api(clock: FakeClock, portal: Any) -> HubSpotApi:
    settings = HubSpotSettings(token=SecretStr("pat-na1-test"))
    api = HubSpotApi(settings, _policy(clock), host=portal.url)
    portal.clients.append(api)
    return api


def test_a_batch_body_we_encoded_goes_as_it_is_with_the_clients_headers(
    clock: FakeClock, portal: Any
) -> None:
    body = orjson.dumps({"inputs": [{"id": "51", "properties": {"handoff_tier": "AE"}}]})
    portal.answers.append((200, {"status": "COMPLETE", "results": [{"id": "51"}]}))
    api = _portal_api(clock, portal)

    answer = api.call(api.batch.update, "contacts", body)

    [(headers, sent)] = portal.sent
    assert sent == body  # not encoded again (a JSON text of the bytes' text)
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Bearer pat-na1-test"
    assert headers["User-Agent"] == api.batch.api_client.user_agent
    assert answer == {"status": "COMPLETE", "results": [{"id": "51"}]}


def test_a_batch_body_as_json_is_still_the_clients_to_encode(clock: FakeClock, portal: Any) -> None:
    portal.answers.append((200, {"status": "COMPLETE", "results": []}))
    api = _portal_api(clock, portal)

    api.call(api.batch.update, "contacts", {"inputs": []})

    [(headers, sent)] = portal.sent
    assert json.loads(sent) == {"inputs": []} and headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("status", "answer", "ours"),
    [
        (400, {"category": "VALIDATION_ERROR", "message": "bad"}, InvalidRequest),
        (403, {"category": "MISSING_SCOPES", "message": "no scope"}, Forbidden),
        (404, {"category": "OBJECT_NOT_FOUND"}, NotFound),
        (503, {"category": "SERVICE_UNAVAILABLE"}, RetriableError),
    ],
)
def test_a_batch_body_we_encoded_is_refused_as_any_call_is(
    clock: FakeClock, portal: Any, status: int, answer: dict[str, Any], ours: type
) -> None:
    portal.answers.extend([(status, answer)] * RetrySettings().attempts)
    api = _portal_api(clock, portal)

    with pytest.raises(ours) as raised:
        api.call(api.batch.update, "contacts", b'{"inputs":[]}')

    assert raised.value.code == answer["category"]
    assert len(portal.sent) == (RetrySettings().attempts if ours is RetriableError else 1)


def test_an_expired_hubspot_token_is_tried_once_more_then_refused(clock: FakeClock) -> None:
    expired = _hubspot_error(ObjectsError, 401, {"category": "EXPIRED_AUTHENTICATION"})
    answers: list[Any] = [expired, {"results": []}]

    def get_page(**kwargs: Any) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return type("Response", (), {"data": json.dumps(answer).encode(), "headers": {}})()

    assert _hubspot_api(clock).call(get_page) == {"results": []}
    with pytest.raises(AuthError):
        _hubspot_api(clock).call(_raising(expired))


def test_the_policy_paces_calls_under_a_rolling_window(clock: FakeClock) -> None:
    policy = _policy(clock)
    policy.pace("api", 5, 10.0)
    sent: list[float] = []

    for _ in range(12):
        policy.call(lambda: sent.append(clock.now))

    assert all(sent[i + 5] - sent[i] >= 10.0 for i in range(len(sent) - 5))


def test_settle_sends_only_retriable_records_again(clock: FakeClock) -> None:
    policy = _policy(clock)
    batches: list[list[str]] = []
    locked_once = {"b"}

    def send(ids: list[str]) -> dict[str, WriteResult]:
        batches.append(ids)
        answered = {i: WriteResult(i, "ok") for i in ids}
        for i in set(ids) & locked_once:
            answered[i] = WriteResult(i, "retriable", "UNABLE_TO_LOCK_ROW")
            locked_once.discard(i)
        return answered

    results = policy.settle(send, ["a", "b", "c"])

    assert batches == [["a", "b", "c"], ["b"]]
    assert {i: (r.status, r.attempts) for i, r in results.items()} == {
        "a": ("ok", 1),
        "b": ("ok", 2),
        "c": ("ok", 1),
    }


@pytest.mark.parametrize("attempts", [1, 2, 3])
def test_a_call_failing_every_time_is_sent_as_many_times_as_settings_allow(
    clock: FakeClock, attempts: int
) -> None:
    policy = HttpPolicy(RetrySettings(attempts=attempts), sleep=clock.sleep, clock=clock)
    sent: list[int] = []

    def send() -> None:
        sent.append(len(sent))
        raise RetriableError(503, "SERVER_UNAVAILABLE", f"try {len(sent)}", retry_after=2.0)

    with pytest.raises(RetriableError, match=f"try {attempts}"):
        policy.call(send)
    assert len(sent) == attempts and policy.retries == attempts - 1
    # each retry waited out the Retry-After the failure before it asked for
    assert len(clock.slept) == attempts - 1 and all(s >= 2.0 for s in clock.slept)


def test_settle_gives_up_on_a_record_still_retriable_after_every_attempt(
    clock: FakeClock,
) -> None:
    policy = _policy(clock)
    batches: list[list[str]] = []

    def send(ids: list[str]) -> dict[str, WriteResult]:
        batches.append(ids)
        return {i: WriteResult(i, "retriable" if i == "b" else "ok") for i in ids}

    results = policy.settle(send, ["a", "b"])

    attempts = RetrySettings().attempts
    assert batches == [["a", "b"], *[["b"]] * (attempts - 1)]
    assert (results["b"].status, results["b"].attempts) == ("retriable", attempts)
    assert policy.retries == attempts - 1 and len(clock.slept) == attempts - 1


def test_a_repeated_page_token_stops_the_pull() -> None:
    tokens = PageTokens()
    assert tokens.next("page-2") == "page-2"
    assert tokens.next(None) is None
    with pytest.raises(PaginationError):
        tokens.next("page-2")


def test_a_job_that_never_finishes_gives_up(clock: FakeClock) -> None:
    with pytest.raises(ConnectorError, match="did not finish"):
        _policy(clock).poll(lambda: None)


def test_retry_after_may_be_an_http_date() -> None:
    policy = HttpPolicy(wall=lambda: datetime(2026, 11, 1, 9, 0, tzinfo=UTC))

    assert policy.retry_after("Sun, 01 Nov 2026 09:00:30 GMT") == 30.0
    assert policy.retry_after("2.5") == 2.5
    assert policy.retry_after("soon") is None


def test_a_budget_share_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="share"):
        Budget(0)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://127.0.0.1:1/limits", "the connection was refused: nothing listens there"),
        ("http://no-such-host.invalid/limits", "its host name could not be resolved (DNS"),
    ],
)
def test_a_call_that_got_no_answer_says_why_in_plain_words(url: str, said: str) -> None:
    with pytest.raises(requests.ConnectionError) as raised:
        requests.get(url, timeout=5)
    error = no_answer(f"GET {url}", raised.value)
    assert isinstance(error, TransportError)
    assert str(error).startswith(f"GET {url}: {said}"), error
    assert "HTTPConnectionPool" not in str(error) and "Max retries" not in str(error)
    timed_out = no_answer("GET x", requests.ReadTimeout("Read timed out. (read timeout=120)"))
    assert str(timed_out) == "GET x: no answer within the read timeout"
    untrusted = requests.exceptions.SSLError(
        "HTTPSConnectionPool(host='x', port=443): Max retries exceeded (Caused by SSLError("
        "SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] "
        "certificate verify failed')))"
    )
    assert "TLS certificate could not be verified" in str(no_answer("GET x", untrusted))
