"""The Salesforce sandbox's state as `sandbox.persistence` keeps it: every object's records, and
the custom fields and validation rules the Tooling API created (a rule's formula is compiled
again when it is taken back, as Salesforce does on deploy)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any

import polars as pl

from sandbox.persistence import Part, Snapshot
from sandbox.salesforce.catalog import Catalog, CustomFieldRecord, ValidationRule
from sandbox.salesforce.dialect import SalesforceDialect
from sandbox.salesforce.formula import compile_condition
from sandbox.salesforce.schema import Field

__all__ = ["rendering", "restore", "snapshot"]


def snapshot(dialect: SalesforceDialect) -> Snapshot:
    """The org's records and set-up metadata as they stand."""
    state = dialect.state
    parts = {name: Part.of(table.frame) for name, table in state.records.tables().items()}
    catalog = state.catalog
    meta = {
        "custom_fields": [_field_json(record, catalog) for record in catalog.custom_fields()],
        "validation_rules": [_rule_json(rule) for rule in catalog.rules()],
    }
    return Snapshot(parts, meta)


def rendering(dialect: SalesforceDialect) -> dict[str, Any]:
    """The options the org's records were rendered with (country spelling and picklists,
    currencies, convention): saved records only fit an org rendered the same way."""
    options = dialect.state.options
    return {
        "country_spelling": options.country_spelling,
        "country_picklists": options.country_picklists,
        "multi_currency": options.multi_currency,
        "convention": options.convention,
    }


def restore(
    dialect: SalesforceDialect, frames: Mapping[str, pl.DataFrame], meta: Mapping[str, Any]
) -> None:
    """Take back saved records and metadata: fields first, so describe and SOQL know them."""
    state = dialect.state
    fields = [(_field_record(item), _field(item["field"])) for item in meta["custom_fields"]]
    for record, field in fields:
        state.catalog.put_field(record, field)
    for item in meta["validation_rules"]:
        state.catalog.put_rule(_rule(item, state.catalog))
    state.records.restore(frames)
    for record, field in fields:  # a no-op unless the object's table was saved without it
        state.records.table(record.object).add_column(field.name, field.kind.dtype)


def _field_json(record: CustomFieldRecord, catalog: Catalog) -> dict[str, Any]:
    sobject = catalog.object(record.object)
    field = sobject.field(record.name) if sobject else None
    assert field is not None, f"{record.object}.{record.name} has no field"
    return {
        "id": record.id,
        "object": record.object,
        "name": record.name,
        "metadata": record.metadata,
        "created": record.created.isoformat(),
        "field": asdict(field),
    }


def _field_record(item: Mapping[str, Any]) -> CustomFieldRecord:
    created = datetime.fromisoformat(item["created"])
    return CustomFieldRecord(item["id"], item["object"], item["name"], item["metadata"], created)


def _field(values: Mapping[str, Any]) -> Field:
    """A field from its saved attributes (JSON keeps tuples as lists)."""
    return Field(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _rule_json(rule: ValidationRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "object": rule.object,
        "name": rule.name,
        "metadata": rule.metadata,
        "created": rule.created.isoformat(),
    }


def _rule(item: Mapping[str, Any], catalog: Catalog) -> ValidationRule:
    sobject = catalog.object(item["object"])
    assert sobject is not None, f"validation rule on unknown object {item['object']}"
    formula = str(item["metadata"].get("errorConditionFormula", ""))
    created = datetime.fromisoformat(item["created"])
    condition = compile_condition(formula, sobject)
    return ValidationRule(
        item["id"], item["object"], item["name"], item["metadata"], condition, created
    )
