"""Web touches added through the sandbox's admin route, as Salesforce holds them: Tasks.

Marketing automation logs a page view or a form submission as a completed Task owned by its
integration user, typed and worded by the org's convention (`mapping.CONVENTIONS`), with
``CreatedDate`` set to the moment of the touch (an integration with "Set Audit Fields") and
``SystemModstamp`` the moment it was logged, so an incremental pull by ``SystemModstamp``
finds it. On an account: ``WhatId`` and ``AccountId`` are the account; on a contact: ``WhoId``,
and ``AccountId`` the contact's account; on a lead: ``WhoId`` only (Salesforce allows no
``WhatId`` there).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sandbox.admin import NewActivity, unknown
from sandbox.salesforce.ids import entity_of, normalize_id
from sandbox.salesforce.mapping import CONVENTIONS, TOPIC_LABELS, Touch
from sandbox.salesforce.state import OrgState

__all__ = ["add_tasks"]

_PEOPLE = ("Lead", "Contact")


def add_tasks(state: OrgState, activities: Sequence[NewActivity]) -> list[str]:
    """Log each activity as a Task (all or none); their ids, in order."""
    touches = CONVENTIONS[state.options.convention].touches
    links = [_links(state, activity) for activity in activities]
    table = state.records.table("Task")
    now = _to_ms(state.clock())
    rows = [
        _task(state, touches[a.type], a, link) | {"Id": state.records.new_id("Task")}
        for a, link in zip(activities, links, strict=True)
    ]
    table.insert([row | {"SystemModstamp": now} for row in rows], now)
    return [row["Id"] for row in rows]


def _task(
    state: OrgState, touch: Touch, activity: NewActivity, link: dict[str, str | None]
) -> dict[str, Any]:
    """The Task's fields but its id and modification stamps."""
    subject = touch.subject + (f": {TOPIC_LABELS[activity.topic]}" if activity.topic else "")
    occurred = _to_ms(activity.occurred_at)
    return {
        **link,
        "Subject": subject,
        "Type": touch.type,
        "TaskSubtype": touch.subtype,
        "OwnerId": state.user_id,
        "ActivityDate": occurred.date(),
        "Status": "Completed",
        "Priority": "Normal",
        "IsClosed": True,
        "IsArchived": False,
        "IsDeleted": False,
        "CreatedDate": occurred,
    }


def _links(state: OrgState, activity: NewActivity) -> dict[str, str | None]:
    """WhoId, WhatId and AccountId of a touch on an account or a person (404 when it is not a
    live record of the org)."""
    given = activity.account_id or activity.person_id or ""
    record_id = normalize_id(given)
    entity = entity_of(record_id) if record_id else None
    wanted = ("Account",) if activity.account_id else _PEOPLE
    if record_id is None or entity is None or entity not in wanted:
        raise unknown(" or ".join(wanted), [given])
    row = state.records.rows(entity, [record_id]).get(record_id)
    if row is None or row["IsDeleted"]:
        raise unknown(" or ".join(wanted), [given])
    if entity == "Account":
        return {"WhoId": None, "WhatId": record_id, "AccountId": record_id}
    return {"WhoId": record_id, "WhatId": None, "AccountId": row.get("AccountId")}


def _to_ms(moment: datetime) -> datetime:
    """A timestamp as Salesforce keeps it: UTC, to the millisecond."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
