"""Everything one sandbox Salesforce org holds while it is served, built from a generated org."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sandbox.faults import FaultPlan
from sandbox.org import Org, org_number
from sandbox.reps import MARKETING_QUEUE_ID
from sandbox.salesforce.auth import Sessions
from sandbox.salesforce.catalog import Catalog
from sandbox.salesforce.config import SalesforceOptions
from sandbox.salesforce.ids import make_id
from sandbox.salesforce.limits import ApiUsage
from sandbox.salesforce.mapping import salesforce_frames
from sandbox.salesforce.standard import org_objects
from sandbox.salesforce.store import Records
from sandbox.salesforce.writes import Writer

__all__ = ["OrgState", "build_state"]


@dataclass(frozen=True)
class OrgState:
    """The served org: metadata, records, sessions, API usage, and the integration user.

    The integration user is the org's always-active marketing queue user: records created
    through the API default to it as owner.
    """

    options: SalesforceOptions
    catalog: Catalog
    records: Records
    writer: Writer
    sessions: Sessions
    usage: ApiUsage
    faults: FaultPlan
    clock: Callable[[], datetime]
    org_id: str
    user_id: str


def build_state(
    org: Org,
    token: str,
    faults: FaultPlan,
    clock: Callable[[], datetime],
    options: SalesforceOptions,
) -> OrgState:
    """The org's records in Salesforce's shape, the initial session ``token`` valid."""
    catalog = Catalog(org_objects(options))
    records = Records(salesforce_frames(org, catalog.objects(), options))
    org_id = make_id("Organization", org_number(org.manifest))  # tells orgs apart as HubSpot's
    user_id = make_id("User", MARKETING_QUEUE_ID)
    return OrgState(
        options=options,
        catalog=catalog,
        records=records,
        writer=Writer(catalog, records, faults, clock, user_id),
        sessions=Sessions(org_id, token),
        usage=ApiUsage(options.api_limit, clock),
        faults=faults,
        clock=clock,
        org_id=org_id,
        user_id=user_id,
    )
