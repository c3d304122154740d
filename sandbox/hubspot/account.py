"""The account information API: ``GET /account-info/v3/details``, the portal's own details.

Its ``portalId`` (the Hub ID) tells one portal from another: Handoff keeps it with each run, so a
state database is never synced against a second portal
(https://developers.hubspot.com/docs/api-reference/latest/account/account-information/guide;
its documented scope is ``oauth``). The sandbox's portal id comes from how its org was made
(`sandbox.org.org_number`, as the Salesforce sandbox's Organization Id does), so two orgs made
alike are one portal, and two made otherwise are two.
"""

from __future__ import annotations

from sandbox.http import Request, Response, Route, json_response
from sandbox.org import OrgManifest, org_number

__all__ = ["AccountRoutes", "portal_id"]


def portal_id(manifest: OrgManifest) -> int:
    """The Hub ID of the portal serving an org: eight digits, from how the org was made."""
    return 10_000_000 + org_number(manifest) % 90_000_000


class AccountRoutes:
    """``GET /account-info/v3/details`` for one portal."""

    def __init__(self, manifest: OrgManifest) -> None:
        self.portal = portal_id(manifest)

    def routes(self) -> list[Route]:
        return [Route("GET", r"/account-info/v3/details/?", "account-info/details", self.details)]

    def details(self, request: Request) -> Response:
        """The portal's details, as HubSpot answers them."""
        return json_response(
            200,
            {
                "portalId": self.portal,
                "accountType": "STANDARD",
                "timeZone": "US/Eastern",
                "companyCurrency": "USD",
                "additionalCurrencies": [],
                "utcOffset": "-05:00",
                "utcOffsetMilliseconds": -18_000_000,
                "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            },
        )
