"""The sandbox CRM's HubSpot dialect: the org served the way the HubSpot APIs serve a portal.

Modules: ``schema`` (objects, properties, association types as data), ``ids`` (HubSpot ids,
merges, archived records), ``mapping`` (org -> records), ``store`` / ``edges`` (state),
``values`` / ``render`` (strings in and out), ``objects`` / ``writes`` / ``search`` / ``merges``
(CRM objects v3), ``associations`` (v4), ``properties``, ``owners``, ``events`` (web and marketing
touches), ``limits`` (rate limits), ``errors`` and ``dialect`` (what the server plugs in).
"""

from sandbox.hubspot.dialect import DEFAULT_TIER, HubSpotDialect, make_dialect
from sandbox.hubspot.ids import ID_BASES, org_id
from sandbox.hubspot.limits import TIERS
from sandbox.hubspot.touches import WEB_TOUCHES

__all__ = [
    "DEFAULT_TIER",
    "ID_BASES",
    "TIERS",
    "WEB_TOUCHES",
    "HubSpotDialect",
    "make_dialect",
    "org_id",
]
