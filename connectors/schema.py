"""The fields we own in the CRM, as data: what set-up creates and what write-back may write.

Each `OwnedField` names our key, the rep-facing label, its kind and its API name in each CRM.
Salesforce gets them as custom fields on Account and Lead (plus a validation rule that makes
the Reason Code required when the Disposition is Rejected); HubSpot as properties in one group
on companies and contacts. Picklist options come from settings (`SchemaSpec`), never code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from connectors.protocol import Entity, SchemaGap, SchemaSpec

__all__ = [
    "HUBSPOT_GROUP",
    "HUBSPOT_OBJECTS",
    "OWNED_FIELDS",
    "OWNER",
    "REASON_RULE",
    "SALESFORCE_OBJECTS",
    "FieldKind",
    "FoundField",
    "OwnedField",
    "ValidationRule",
    "gaps",
    "missing_options",
    "options_of",
    "owned_for",
]

FieldKind = Literal["number", "picklist", "long_text", "text", "datetime", "lookup"]
OptionSource = Literal["tier_labels", "dispositions", "reason_codes"]
# who fills a field in: each run, the reps (a run reads it), or a stage not built yet
Writer = Literal["run", "reps", "planned"]


@dataclass(frozen=True)
class OwnedField:
    """A field Handoff creates and writes."""

    key: str  # our field name, as in `Update.values`
    label: str
    kind: FieldKind
    salesforce: str
    hubspot: str
    description: str
    entities: tuple[Entity, ...] = ("account", "person")
    options: OptionSource | None = None
    writer: Writer = "run"


OWNED_FIELDS: tuple[OwnedField, ...] = (
    OwnedField(
        "score", "Handoff Score", "number", "Handoff_Score__c", "handoff_score",
        "Fit and intent score, 0-100, from Handoff.",
    ),
    OwnedField(
        "tier", "Handoff Tier", "picklist", "Handoff_Tier__c", "handoff_tier",
        "Which team works the record: nurture, SDR or AE (MQA).", options="tier_labels",
    ),
    OwnedField(
        "signals", "Handoff Signals", "long_text", "Handoff_Signals__c", "handoff_signals",
        "Why the score is what it is, one signal a line with its points.",
    ),
    OwnedField(
        "topic", "Handoff Topic", "text", "Handoff_Topic__c", "handoff_topic",
        "The content topic to lead with.",
    ),
    OwnedField(
        "model_version", "Handoff Model Version", "text", "Handoff_Model_Version__c",
        "handoff_model_version", "The scoring model that produced the score.",
    ),
    OwnedField(
        "scored_at", "Handoff Scored At", "datetime", "Handoff_Scored_At__c",
        "handoff_scored_at", "When the score was computed.",
    ),
    OwnedField(
        "sla_due", "Handoff SLA Due", "datetime", "Handoff_SLA_Due__c", "handoff_sla_due",
        "First touch is due by this time.", writer="planned",
    ),
    OwnedField(
        "disqualification_reason", "Handoff Disqualification Reason", "text",
        "Handoff_Disqualification_Reason__c", "handoff_disqualification_reason",
        "The rule that disqualified the account, if one did.",
    ),
    OwnedField(
        "matched_account_id", "Handoff Matched Account", "lookup",
        "Handoff_Matched_Account__c", "handoff_matched_account",
        "The account Handoff linked this lead to.", entities=("person",),
    ),
    OwnedField(
        "orphan_reason", "Handoff Orphan Reason", "text", "Handoff_Orphan_Reason__c",
        "handoff_orphan_reason",
        "Why Handoff linked this lead to no account (it is scored on its own activity).",
        entities=("person",),
    ),
    OwnedField(
        "disposition", "Disposition", "picklist", "Handoff_Disposition__c",
        "handoff_disposition", "Sales' verdict on the hand-off.", options="dispositions",
        writer="reps",
    ),
    OwnedField(
        "reason_code", "Reason Code", "picklist", "Handoff_Reason_Code__c",
        "handoff_reason_code", "Why Sales rejected or recycled it.", options="reason_codes",
        writer="reps",
    ),
)  # fmt: skip
OWNER = "owner_id"  # the one CRM field we write that we do not own

# entity -> the object that carries our fields
SALESFORCE_OBJECTS: dict[Entity, str] = {"account": "Account", "person": "Lead"}
HUBSPOT_OBJECTS: dict[Entity, str] = {"account": "companies", "person": "contacts"}
HUBSPOT_GROUP = ("handoff", "Handoff")


@dataclass(frozen=True)
class ValidationRule:
    """A Salesforce validation rule set-up keeps in place on every object with our fields."""

    name: str
    formula: str
    message: str
    display_field: str
    description: str


@dataclass(frozen=True)
class FoundField:
    """One of our fields as the CRM describes it: its type, and its values if a picklist."""

    type: str
    options: tuple[str, ...] = ()


REASON_RULE = ValidationRule(
    "Handoff_Reason_Required",
    'AND(ISPICKVAL(Handoff_Disposition__c, "Rejected"), ISBLANK(TEXT(Handoff_Reason_Code__c)))',
    "Choose a Reason Code when you reject a hand-off.",
    "Handoff_Reason_Code__c",
    "Handoff: a rejection needs a reason code, so the model learns from it.",
)


def owned_for(entity: Entity) -> tuple[OwnedField, ...]:
    """The fields we own on records of ``entity``."""
    return tuple(f for f in OWNED_FIELDS if entity in f.entities)


def options_of(owned: OwnedField, spec: SchemaSpec) -> tuple[str, ...]:
    """A picklist's values, from settings."""
    return () if owned.options is None else tuple(getattr(spec, owned.options))


def missing_options(existing: Iterable[str], wanted: Iterable[str]) -> list[str]:
    """Wanted picklist values the CRM lacks (values it has beyond them are left alone)."""
    have = set(existing)
    return [value for value in wanted if value not in have]


def gaps(
    object_name: str,
    owned: Sequence[OwnedField],
    found: Mapping[str, FoundField],
    crm: Literal["salesforce", "hubspot"],
    types: Mapping[FieldKind, str],
    spec: SchemaSpec,
) -> list[SchemaGap]:
    """Our fields on ``object_name`` that are missing from ``found`` (API name -> as the CRM
    describes it), of another type than ``types`` says, or lacking picklist values."""
    problems = []
    for owned_field in owned:
        name = getattr(owned_field, crm)
        have, wanted = found.get(name), types[owned_field.kind]
        if have is None:
            problem = "missing"
        elif have.type != wanted:
            problem = f"is a {have.type} field; Handoff needs {wanted}"
        elif lacking := missing_options(have.options, options_of(owned_field, spec)):
            problem = f"lacks {', '.join(lacking)}"
        else:
            continue
        problems.append(SchemaGap(object_name, name, owned_field.label, problem))
    return problems
