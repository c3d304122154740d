"""The sandbox's SOQL engine: queries over a small hand-built org, as Salesforce would answer."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simple_salesforce import format_soql

from sandbox.soql import (
    And,
    Comparison,
    FieldRef,
    Like,
    Lookup,
    ObjectSchema,
    Or,
    OrderKey,
    Query,
    Schema,
    SoqlError,
    Wildcard,
    count,
    execute,
    parse,
    records,
    records_json,
)

SCHEMA = Schema(
    [
        ObjectSchema(
            "User",
            {"Id": "id", "Email": "string", "IsActive": "boolean", "IsDeleted": "boolean"},
        ),
        ObjectSchema(
            "Account",
            {
                "Id": "id",
                "Name": "string",
                "Industry": "picklist",
                "AnnualRevenue": "double",
                "NumberOfEmployees": "int",
                "IsPartner": "boolean",
                "SystemModstamp": "datetime",
                "LastActivityDate": "date",
                "OwnerId": "reference",
                "ParentId": "reference",
                "IsDeleted": "boolean",
            },
            {"Owner": Lookup("OwnerId", "User"), "Parent": Lookup("ParentId", "Account")},
        ),
        ObjectSchema(
            "Lead",
            {
                "Id": "id",
                "LastName": "string",
                "IsConverted": "boolean",
                "OwnerId": "reference",
                "IsDeleted": "boolean",
            },
            {"Owner": Lookup("OwnerId", "User")},
        ),
    ]
)
NOON = datetime(2024, 1, 31, 12, tzinfo=UTC)  # two accounts share this SystemModstamp
JUST_BEFORE = datetime(2024, 1, 31, 11, 59, 59, 999_000, tzinfo=UTC)
EVENING = datetime(2024, 1, 31, 17, tzinfo=UTC)
FEB_1 = datetime(2024, 2, 1, tzinfo=UTC)
NEW_YEAR = datetime(2024, 1, 1, tzinfo=UTC)
JAN_30, JAN_31 = date(2024, 1, 30), date(2024, 1, 31)
# Id, Name, Industry, AnnualRevenue, NumberOfEmployees, IsPartner, SystemModstamp,
# LastActivityDate, OwnerId, ParentId, IsDeleted
ACCOUNT_ROWS = [
    ("A1", "Acme", "Tech", 1_000_000.0, 50, True, NOON, JAN_31, "U1", None, False),
    ("A2", "ACME Labs", "Tech", 250_000.5, 10, False, NOON, JAN_30, "U2", "A1", False),
    ("A3", "O'Brien", None, None, None, None, JUST_BEFORE, None, "U1", "A1", False),
    ("A4", "100% Natural_Foods", "Retail", 5.0, 3, True, FEB_1, FEB_1.date(), None, None, False),
    ("A5", None, "Retail", 0.0, 0, False, EVENING, JAN_31, "U2", "A4", False),
    ("A6", "Acme Deleted", "Tech", 1.0, 1, False, NOON, JAN_31, "U1", None, True),
    ("A7", "' OR Name LIKE '%", None, None, None, False, NEW_YEAR, None, "U2", None, False),
    ("A8", "O\\'Brien", None, None, None, False, NEW_YEAR, None, "U1", None, False),
]


def _frame(object_name: str, rows: list[tuple[object, ...]]) -> pl.DataFrame:
    """A table in the engine's contract: canonical columns, datetimes as UTC microseconds."""
    obj = SCHEMA.object_named(object_name)
    assert obj is not None
    dtypes = {"double": pl.Float64, "int": pl.Int64, "boolean": pl.Boolean, "date": pl.Date}
    schema = {
        name: pl.Datetime("us", "UTC") if kind == "datetime" else dtypes.get(kind, pl.String)
        for name, kind in obj.fields.items()
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


TABLES = {
    "User": _frame(
        "User", [("U1", "ann@acme.test", True, False), ("U2", "bob@acme.test", False, False)]
    ),
    "Account": _frame("Account", ACCOUNT_ROWS),
    "Lead": _frame(
        "Lead",
        [
            ("L1", "Ng", False, "U1", False),
            ("L2", "Okafor", True, "U2", False),
            ("L3", "Gone", False, "U2", True),
        ],
    ),
}
LIVE = {"A1", "A2", "A3", "A4", "A5", "A7", "A8"}


def _ids(soql: str, *, include_deleted: bool = False) -> list[str]:
    frame = execute(parse(soql), TABLES, SCHEMA, include_deleted=include_deleted)
    return frame["Id"].to_list()


def _accounts(where: str) -> set[str]:
    return set(_ids(f"SELECT Id FROM Account WHERE {where}"))


FILTERS = [
    # comparison operators; text compares case-insensitively, ids exactly
    ("Name = 'acme'", {"A1"}),
    ("Name != 'Acme'", LIVE - {"A1"}),  # != matches null names too, as in SOQL
    ("Name <> 'ACME'", LIVE - {"A1"}),
    ("Id = 'A1'", {"A1"}),
    ("Id = 'a1'", set()),
    ("AnnualRevenue > 5", {"A1", "A2"}),
    ("AnnualRevenue >= 5", {"A1", "A2", "A4"}),
    ("AnnualRevenue < 5", {"A5"}),
    ("AnnualRevenue <= 5.0", {"A4", "A5"}),
    ("AnnualRevenue > -1", {"A1", "A2", "A4", "A5"}),
    ("NumberOfEmployees = 10", {"A2"}),
    ("Name > 'acme'", {"A2", "A3", "A8"}),
    # IN / NOT IN
    ("Id IN ('A1', 'A3', 'A6')", {"A1", "A3"}),
    ("Industry IN ('tech', 'RETAIL')", {"A1", "A2", "A4", "A5"}),
    ("Industry NOT IN ('Tech')", {"A3", "A4", "A5", "A7", "A8"}),
    ("Industry IN ('Tech', null)", {"A1", "A2", "A3", "A7", "A8"}),
    ("NumberOfEmployees IN (3, 50)", {"A1", "A4"}),
    # null
    ("Industry = null", {"A3", "A7", "A8"}),
    ("Industry != null", {"A1", "A2", "A4", "A5"}),
    ("AnnualRevenue > null", set()),
    # booleans: a null boolean reads as false
    ("IsPartner = true", {"A1", "A4"}),
    ("IsPartner = FALSE", LIVE - {"A1", "A4"}),
    ("IsPartner = null", LIVE - {"A1", "A4"}),
    ("IsPartner != null", {"A1", "A4"}),
    ("IsPartner != true", LIVE - {"A1", "A4"}),
    # LIKE: % and _, case-insensitive, escaped wildcards are text
    ("Name LIKE 'acme%'", {"A1", "A2"}),
    ("Name LIKE '%LABS'", {"A2"}),
    ("Name LIKE 'Ac_e'", {"A1"}),
    ("Name LIKE '%_%'", LIVE - {"A5"}),
    ("Name LIKE '100\\% N%'", {"A4"}),
    ("Name LIKE '100\\%'", set()),
    ("Name LIKE '%\\_%'", {"A4"}),
    ("NOT Name LIKE 'acme%'", LIVE - {"A1", "A2"}),
    # string escapes
    ("Name = 'O\\'Brien'", {"A3"}),
    ("Name = 'O\\\\\\'Brien'", {"A8"}),
    ("Name = 'o\\u0027brien'", {"A3"}),
    # dates and datetimes; >= is a closed bound, so a shared timestamp is included
    ("LastActivityDate = 2024-01-31", {"A1", "A5"}),
    ("LastActivityDate < 2024-01-31", {"A2"}),
    ("SystemModstamp >= 2024-01-31T12:00:00Z", {"A1", "A2", "A4", "A5"}),
    ("SystemModstamp >= 2024-01-31T12:00:00+00:00", {"A1", "A2", "A4", "A5"}),
    ("SystemModstamp >= 2024-01-31T07:00:00-05:00", {"A1", "A2", "A4", "A5"}),
    ("SystemModstamp > 2024-01-31T12:00:00Z", {"A4", "A5"}),
    ("SystemModstamp >= 2024-01-31T11:59:59.999Z", {"A1", "A2", "A3", "A4", "A5"}),
    ("SystemModstamp >= 2024-01-31T11:59:59.9991Z", {"A1", "A2", "A4", "A5"}),
    ("SystemModstamp = 2024-01-31T17:00:00.000+05:00", {"A1", "A2"}),
    ("SystemModstamp = 2024-01-31T12:00:00.000+0000", {"A1", "A2"}),
    # AND / OR / NOT and parentheses
    ("Industry = 'Tech' AND (NumberOfEmployees = 10 OR IsPartner = true)", {"A1", "A2"}),
    ("(Industry = 'Tech' AND NumberOfEmployees = 10) OR IsPartner = true", {"A1", "A2", "A4"}),
    ("Name = 'x' OR Name = 'acme' OR Name = 'acme labs'", {"A1", "A2"}),
    ("Industry = 'Tech' AND IsPartner = false AND NumberOfEmployees < 50", {"A2"}),
    ("NOT Industry = 'Tech' AND IsPartner = true", {"A4"}),
    ("NOT (Industry = 'Tech' AND IsPartner = true)", LIVE - {"A1"}),
    ("NOT (Industry = 'Tech' OR Industry = 'Retail')", {"A3", "A7", "A8"}),
    ("NOT NOT Name = 'acme'", {"A1"}),
    ("((Name = 'acme'))", {"A1"}),
    # relationship fields: a missing parent's fields read as null
    ("Owner.Email = 'ANN@acme.test'", {"A1", "A3", "A8"}),
    ("Owner.Email = null", {"A4"}),
    ("Owner.Email != 'ann@acme.test'", {"A2", "A4", "A5", "A7"}),
    ("Parent.Name LIKE 'acme%'", {"A2", "A3"}),
    ("Parent.Owner.Email = 'ann@acme.test'", {"A2", "A3"}),
    ("owner.email LIKE 'BOB%' OR parent.industry = 'retail'", {"A2", "A5", "A7"}),
    # names and keywords in any case
    ("name = 'Acme' and INDUSTRY = 'TECH'", {"A1"}),
]


@pytest.mark.parametrize(("where", "expected"), FILTERS, ids=[where for where, _ in FILTERS])
def test_where_selects_what_salesforce_would(where: str, expected: set[str]) -> None:
    assert _accounts(where) == expected


ORDERS = [
    ("ORDER BY Name", ["A5", "A7", "A4", "A1", "A2", "A3", "A8"]),  # nulls first by default
    ("ORDER BY Name ASC NULLS FIRST", ["A5", "A7", "A4", "A1", "A2", "A3", "A8"]),
    ("ORDER BY Name DESC", ["A5", "A8", "A3", "A2", "A1", "A4", "A7"]),
    ("ORDER BY Name DESC NULLS LAST", ["A8", "A3", "A2", "A1", "A4", "A7", "A5"]),
    ("ORDER BY Industry DESC NULLS LAST, Name", ["A1", "A2", "A5", "A4", "A7", "A3", "A8"]),
    ("ORDER BY Owner.Email DESC NULLS LAST, Id", ["A2", "A5", "A7", "A1", "A3", "A8", "A4"]),
    ("ORDER BY SystemModstamp DESC, Id DESC LIMIT 3", ["A4", "A5", "A2"]),
    ("ORDER BY Name NULLS LAST LIMIT 2 OFFSET 1", ["A4", "A1"]),
    ("ORDER BY Name NULLS LAST OFFSET 6", ["A5"]),
    ("ORDER BY Id LIMIT 0", []),
    ("ORDER BY Id OFFSET 20", []),
]


@pytest.mark.parametrize(("clauses", "expected"), ORDERS, ids=[clauses for clauses, _ in ORDERS])
def test_order_by_limit_and_offset(clauses: str, expected: list[str]) -> None:
    assert _ids(f"SELECT Id FROM Account {clauses}") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("O'Brien", ["A3"]),
        ("O\\'Brien", ["A8"]),
        ("' OR Name LIKE '%", ["A7"]),
        ("acme' OR Name != '", []),
    ],
)
def test_values_escaped_by_format_soql_are_data(value: str, expected: list[str]) -> None:
    assert _ids(format_soql("SELECT Id FROM Account WHERE Name = {}", value)) == expected


def test_like_values_escaped_by_format_soql_match_their_text_only() -> None:
    soql = format_soql("SELECT Id FROM Account WHERE Name LIKE '{:like}%'", "100% N")
    assert _ids(soql) == ["A4"]
    assert _ids(format_soql("SELECT Id FROM Account WHERE Name LIKE '{:like}'", "Ac_e")) == []


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=40))
def test_any_text_round_trips_through_format_soql(value: str) -> None:
    soql = format_soql(
        "SELECT Id FROM Account WHERE Name = {} OR Name LIKE '{:like}'", value, value
    )
    where = parse(soql).where
    assert isinstance(where, Or)
    values = [operand.value for operand in where.operands if isinstance(operand, Comparison)]
    assert values == [value, Like((value,) if value else ())]
    row = (*ACCOUNT_ROWS[0][:1], value, *ACCOUNT_ROWS[0][2:])
    decoy = ("A9", value + "x", *ACCOUNT_ROWS[0][2:])
    tables = {**TABLES, "Account": _frame("Account", [row, decoy])}
    assert execute(parse(soql), tables, SCHEMA)["Id"].to_list() == ["A1"]


def test_a_15_character_id_finds_its_18_character_record() -> None:
    row = ("001Dn0000012AbCIAU", *ACCOUNT_ROWS[0][1:])
    tables = {**TABLES, "Account": _frame("Account", [row])}
    for where in [
        "Id = '001Dn0000012AbC'",
        "Id IN ('001Dn0000012AbC')",
        "Id = '001Dn0000012AbCIAU'",
    ]:
        assert execute(parse(f"SELECT Id FROM Account WHERE {where}"), tables, SCHEMA).height == 1
    wrong_case = parse("SELECT Id FROM Account WHERE Id = '001Dn0000012abc'")
    assert execute(wrong_case, tables, SCHEMA).is_empty()


def test_query_all_includes_deleted_rows() -> None:
    soql = "SELECT Id FROM Account WHERE Name LIKE 'acme%' ORDER BY Id"
    assert _ids(soql) == ["A1", "A2"]
    assert _ids(soql, include_deleted=True) == ["A1", "A2", "A6"]
    assert _ids("SELECT Id FROM Account WHERE IsDeleted = true", include_deleted=True) == ["A6"]
    assert _ids("SELECT Id FROM Lead WHERE Owner.Email LIKE 'bob%'") == ["L2"]
    assert _ids("SELECT Id FROM Lead ORDER BY Id", include_deleted=True) == ["L1", "L2", "L3"]


def test_count_only_queries_answer_a_number() -> None:
    query = parse("select count() from ACCOUNT where Industry = 'Tech'")
    assert query.count_only and query.fields == ()
    assert count(query, TABLES, SCHEMA) == 2
    assert count(query, TABLES, SCHEMA, include_deleted=True) == 3
    assert count(parse("SELECT COUNT() FROM Account LIMIT 1"), TABLES, SCHEMA) == 1
    assert records_json(execute(query, TABLES, SCHEMA), query, SCHEMA) == "[]"


def test_parse_gives_the_query_tree() -> None:
    soql = (
        "SELECT Id, Owner.Email FROM Lead WHERE Id IN ('a', 'b') AND LastName LIKE 'N_%' "
        "ORDER BY LastName DESC NULLS LAST, Id LIMIT 5 OFFSET 10"
    )
    pattern = Like(("N", Wildcard.ONE, Wildcard.ANY))
    assert parse(soql) == Query(
        object="Lead",
        fields=(FieldRef(("Id",)), FieldRef(("Owner", "Email"))),
        where=And(
            (
                Comparison(FieldRef(("Id",)), "IN", ("a", "b")),
                Comparison(FieldRef(("LastName",)), "LIKE", pattern),
            )
        ),
        order_by=(OrderKey(FieldRef(("LastName",)), True, True), OrderKey(FieldRef(("Id",)))),
        limit=5,
        offset=10,
    )


def test_executed_columns_use_canonical_names() -> None:
    frame = execute(
        parse("select id, NAME, owner.EMAIL from ACCOUNT where id = 'A1'"), TABLES, SCHEMA
    )
    assert frame.columns[:3] == ["Id", "Name", "Owner.Email"]
    assert frame.row(0)[:3] == ("A1", "Acme", "ann@acme.test")


def _url(object_name: str, record_id: str) -> str:
    return f"/services/data/v59.0/sobjects/{object_name}/{record_id}"


def test_records_render_as_salesforce_json() -> None:
    query = parse(
        "select id, name, owner.email, systemmodstamp, lastactivitydate, annualrevenue, "
        "numberofemployees, ispartner from account where id in ('A1', 'A4') order by id"
    )
    frame = execute(query, TABLES, SCHEMA)
    rendered = json.loads(records_json(frame, query, SCHEMA))
    assert rendered == [
        {
            "attributes": {"type": "Account", "url": _url("Account", "A1")},
            "Id": "A1",
            "Name": "Acme",
            "Owner": {
                "attributes": {"type": "User", "url": _url("User", "U1")},
                "Email": "ann@acme.test",
            },
            "SystemModstamp": "2024-01-31T12:00:00.000+0000",
            "LastActivityDate": "2024-01-31",
            "AnnualRevenue": 1_000_000.0,
            "NumberOfEmployees": 50,
            "IsPartner": True,
        },
        {
            "attributes": {"type": "Account", "url": _url("Account", "A4")},
            "Id": "A4",
            "Name": "100% Natural_Foods",
            "Owner": None,
            "SystemModstamp": "2024-02-01T00:00:00.000+0000",
            "LastActivityDate": "2024-02-01",
            "AnnualRevenue": 5.0,
            "NumberOfEmployees": 3,
            "IsPartner": True,
        },
    ]
    assert records(frame, query, SCHEMA) == rendered
    assert list(rendered[0]) == [
        "attributes",
        "Id",
        "Name",
        "Owner",
        "SystemModstamp",
        "LastActivityDate",
        "AnnualRevenue",
        "NumberOfEmployees",
        "IsPartner",
    ]
    assert list(rendered[0]["Owner"]) == ["attributes", "Email"]


def test_nested_relationships_render_one_object_per_level() -> None:
    query = parse("SELECT Parent.Owner.Email, Name, Parent.Name FROM Account WHERE Id = 'A2'")
    rendered = records(execute(query, TABLES, SCHEMA), query, SCHEMA, api_version="60.0")
    parent_url = "/services/data/v60.0/sobjects/Account/A1"
    owner_url = "/services/data/v60.0/sobjects/User/U1"
    assert rendered == [
        {
            "attributes": {"type": "Account", "url": "/services/data/v60.0/sobjects/Account/A2"},
            "Parent": {
                "attributes": {"type": "Account", "url": parent_url},
                "Owner": {
                    "attributes": {"type": "User", "url": owner_url},
                    "Email": "ann@acme.test",
                },
                "Name": "Acme",
            },
            "Name": "ACME Labs",
        }
    ]
    assert list(rendered[0]) == ["attributes", "Parent", "Name"]
    assert list(rendered[0]["Parent"]) == ["attributes", "Owner", "Name"]


ERRORS = [
    ("SELECT Foo FROM Account", "INVALID_FIELD", "No such column 'Foo' on entity 'Account'."),
    ("SELECT Id FROM Account WHERE Foo = 1", "INVALID_FIELD", "No such column 'Foo'"),
    ("SELECT Id FROM Account ORDER BY Foo", "INVALID_FIELD", "No such column 'Foo'"),
    ("SELECT Owner.Foo FROM Account", "INVALID_FIELD", "No such column 'Foo' on entity 'User'"),
    ("SELECT Boss.Name FROM Account", "INVALID_FIELD", "Didn't understand relationship 'Boss'"),
    ("SELECT Name.Foo FROM Account", "INVALID_FIELD", "Didn't understand relationship 'Name'"),
    ("SELECT Owner FROM Account", "INVALID_FIELD", "No such column 'Owner'"),
    ("SELECT Id FROM Opportunity", "INVALID_TYPE", "sObject type 'Opportunity' is not supported"),
    ("SELECT FROM Account", "MALFORMED_QUERY", "unexpected token: 'FROM'"),
    ("SELECT Id Account", "MALFORMED_QUERY", "unexpected token: 'Account'"),
    ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY", "unexpected token: <EOF>"),
    ("SELECT Id FROM Account WHERE Name = 'open", "MALFORMED_QUERY", "expecting '''"),
    ("SELECT Id FROM Account WHERE Name # 'a'", "MALFORMED_QUERY", "at character '#'"),
    ("SELECT Id FROM Account LIMIT -1", "MALFORMED_QUERY", "unexpected token: '-1'"),
    ("SELECT Id FROM Account WHERE Id IN ()", "MALFORMED_QUERY", "unexpected token: ')'"),
    ("SELECT Id FROM Account WHERE Name = 'a' x", "MALFORMED_QUERY", "unexpected token: 'x'"),
    ("SELECT Id, Name, name FROM Account", "MALFORMED_QUERY", "duplicate field selected: Name"),
    ("SELECT Id FROM Account WHERE Name = 'a\\qb'", "MALFORMED_QUERY", "sequence '\\q'"),
    ("SELECT Id FROM Account WHERE Name = '100\\%'", "MALFORMED_QUERY", "sequence '\\%'"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT ParentId FROM Account)", "MALFORMED_QUERY", ""),
    ("SELECT Id FROM Account WHERE CreatedDate > TODAY", "MALFORMED_QUERY", "'TODAY'"),
    ("SELECT Id FROM Account WHERE LastActivityDate = 2024-02-30", "MALFORMED_QUERY", ""),
    # Salesforce requires parentheses wherever AND and OR meet
    (
        "SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'",
        "MALFORMED_QUERY",
        "'OR'",
    ),
    (
        "SELECT Id FROM Account WHERE Name = 'a' OR Name = 'b' AND Name = 'c'",
        "MALFORMED_QUERY",
        "'AND'",
    ),
    # values of the wrong type; a date literal does not compare with a datetime field
    ("SELECT Id FROM Account WHERE SystemModstamp > 2024-01-31", "INVALID_FIELD", "type dateTime"),
    (
        "SELECT Id FROM Account WHERE LastActivityDate > 2024-01-31T00:00:00Z",
        "INVALID_FIELD",
        "type date",
    ),
    ("SELECT Id FROM Account WHERE NumberOfEmployees = '10'", "INVALID_FIELD", "should not be"),
    ("SELECT Id FROM Account WHERE Name = 5", "INVALID_FIELD", "should be enclosed in quotes"),
    ("SELECT Id FROM Account WHERE IsPartner = 'true'", "INVALID_FIELD", "type boolean"),
    ("SELECT Id FROM Account WHERE Name IN ('a', 1)", "INVALID_FIELD", "type string"),
    ("SELECT Id FROM Account WHERE Name LIKE null", "INVALID_FIELD", "type string"),
    ("SELECT Id FROM Account WHERE AnnualRevenue LIKE '5%'", "INVALID_QUERY_FILTER_OPERATOR", ""),
    ("SELECT Id FROM Account WHERE IsPartner > false", "INVALID_QUERY_FILTER_OPERATOR", ""),
    ("SELECT Id FROM Account OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "allowed is 2000"),
]


@pytest.mark.parametrize(("soql", "code", "says"), ERRORS, ids=[soql for soql, _, _ in ERRORS])
def test_refusals_carry_salesforce_error_codes(soql: str, code: str, says: str) -> None:
    with pytest.raises(SoqlError) as raised:
        execute(parse(soql), TABLES, SCHEMA)
    assert raised.value.error_code == code
    assert says in raised.value.message


def test_error_messages_point_at_the_offending_token() -> None:
    with pytest.raises(SoqlError) as raised:
        execute(parse("SELECT Id, Foo FROM Account"), TABLES, SCHEMA)
    assert raised.value.message.startswith(
        "\nSELECT Id, Foo FROM Account\n           ^\nERROR at Row:1:Column:12\nNo such column"
    )
    assert str(raised.value) == raised.value.message
    with pytest.raises(SoqlError) as raised:
        execute(parse("SELECT Id\nFROM Account\nWHERE Bar = 1"), TABLES, SCHEMA)
    assert raised.value.message.startswith("\nWHERE Bar = 1\n      ^\nERROR at Row:3:Column:7\n")


def test_a_schema_that_contradicts_itself_is_refused() -> None:
    with pytest.raises(ValueError, match="lookups on missing fields"):
        ObjectSchema("Lead", {"Id": "id"}, {"Owner": Lookup("OwnerId", "User")})
    with pytest.raises(ValueError, match="not in the schema"):
        Schema(
            [
                ObjectSchema(
                    "Lead",
                    {"Id": "id", "OwnerId": "reference"},
                    {"Owner": Lookup("OwnerId", "User")},
                )
            ]
        )
