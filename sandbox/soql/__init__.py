"""The sandbox's SOQL engine: parse a query, run it over polars tables, render Salesforce records.

    query = parse("SELECT Id, Name, Owner.Email FROM Account WHERE Name LIKE 'Acme%' LIMIT 10")
    frame = execute(query, tables, schema)              # or count(...) for SELECT COUNT()
    body = records_json(frame.slice(0, 2000), query, schema)

Pure: no I/O and no clock. Every refusal is a `SoqlError` carrying Salesforce's error code.
"""

from sandbox.soql.errors import SoqlError
from sandbox.soql.evaluator import count, execute
from sandbox.soql.parser import MAX_OFFSET, parse
from sandbox.soql.render import DEFAULT_API_VERSION, records, records_json
from sandbox.soql.schema import FIELD_KINDS, FieldKind, Lookup, ObjectSchema, Schema
from sandbox.soql.syntax import (
    And,
    Comparison,
    Condition,
    FieldRef,
    Like,
    Not,
    Or,
    OrderKey,
    Query,
    Value,
    Wildcard,
)

__all__ = [
    "DEFAULT_API_VERSION",
    "FIELD_KINDS",
    "MAX_OFFSET",
    "And",
    "Comparison",
    "Condition",
    "FieldKind",
    "FieldRef",
    "Like",
    "Lookup",
    "Not",
    "ObjectSchema",
    "Or",
    "OrderKey",
    "Query",
    "Schema",
    "SoqlError",
    "Value",
    "Wildcard",
    "count",
    "execute",
    "parse",
    "records",
    "records_json",
]
