"""Owners API v3: the org's users as owners, paged; inactive users are archived owners.

HubSpot owners have no role, territory or out-of-office fields, so they travel as teams, the one
grouping an owner carries: the primary team names role and territory as a portal would, messily
("AE EMEA", "Sales Development - APAC", "Sales Team LATAM": `sandbox.teams`); an owner who is
out of office is also in the non-primary team "Out of Office" (how portals keep such reps out
of rotation). The marketing queue is an owner of type QUEUE.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from sandbox.http import Request, Response, Route
from sandbox.hubspot.errors import HubSpotError
from sandbox.hubspot.ids import OWNER_BASE, USER_BASE
from sandbox.hubspot.render import page_body
from sandbox.hubspot.responses import is_true, link_to
from sandbox.hubspot.values import format_timestamp
from sandbox.reps import MARKETING_QUEUE_ID
from sandbox.teams import user_labels

__all__ = ["OUT_OF_OFFICE_TEAM", "TEAM_BASE", "OwnerRoutes", "build_owners"]

OUT_OF_OFFICE_TEAM = "Out of Office"
TEAM_BASE = 5_000_000
MAX_OWNERS_PAGE = 500
DEFAULT_OWNERS_PAGE = 100


def _teams(users: pl.DataFrame) -> dict[str, str]:
    """Team name -> team id, ids in name order (the out-of-office team first)."""
    names = sorted(set(users["_team_name"]))
    return {name: str(TEAM_BASE + i) for i, name in enumerate([OUT_OF_OFFICE_TEAM, *names])}


def build_owners(users: pl.DataFrame) -> list[dict[str, Any]]:
    """Every user as a ``PublicOwner``, in id order."""
    users = user_labels(users)
    teams = _teams(users)
    owners = []
    for user in users.sort("user_id").iter_rows(named=True):
        primary = user["_team_name"]
        member = [{"id": teams[primary], "name": primary, "primary": True}]
        if user["out_of_office"]:
            member.append(
                {"id": teams[OUT_OF_OFFICE_TEAM], "name": OUT_OF_OFFICE_TEAM, "primary": False}
            )
        owners.append(
            {
                "id": str(OWNER_BASE + user["user_id"]),
                "email": user["email"],
                "type": "QUEUE" if user["user_id"] == MARKETING_QUEUE_ID else "PERSON",
                "firstName": user["first_name"],
                "lastName": user["last_name"],
                "userId": USER_BASE + user["user_id"],
                "userIdIncludingInactive": USER_BASE + user["user_id"],
                "createdAt": format_timestamp(user["created_at"]),
                "updatedAt": format_timestamp(user["modified_at"]),
                "archived": not user["is_active"],
                "teams": member,
            }
        )
    return owners


class OwnerRoutes:
    """Handlers of /crm/v3/owners/."""

    def __init__(self, users: pl.DataFrame) -> None:
        self.owners = build_owners(users)

    def routes(self) -> list[Route]:
        """List (with or without the trailing slash) and get by id."""
        return [
            Route("GET", r"/crm/v3/owners/?", "owners", self.list_page),
            Route("GET", r"/crm/v3/owners/(?P<id>\d+)", "owners/{id}", self.get),
        ]

    def list_page(self, request: Request) -> Response:
        """Active owners (or only archived ones), filtered by email, 100 a page by default."""
        archived = is_true(request, "archived")
        email = (request.arg("email") or "").lower()
        pool = [
            o
            for o in self.owners
            if o["archived"] == archived and (not email or o["email"].lower() == email)
        ]
        start, limit = (
            _int(request.arg("after"), 0),
            _int(request.arg("limit"), DEFAULT_OWNERS_PAGE),
        )
        if not 0 < limit <= MAX_OWNERS_PAGE:
            raise HubSpotError(400, f"limit must be between 1 and {MAX_OWNERS_PAGE}, got {limit}")
        page = pool[start : start + limit]
        after = str(start + limit) if start + limit < len(pool) else None
        return Response(
            200, page_body(json.dumps(page), after, link_to(request, "/crm/v3/owners/"))
        )

    def get(self, request: Request) -> Response:
        """One owner by owner id (or by user id with ``idProperty=userId``)."""
        key = "userId" if request.arg("idProperty") == "userId" else "id"
        wanted = request.params["id"]
        archived = is_true(request, "archived")
        for owner in self.owners:
            if str(owner[key]) == wanted and owner["archived"] == archived:
                return Response(200, json.dumps(owner).encode())
        raise HubSpotError(404, f"Owner {wanted} not found", context={"id": [wanted]})


def _int(text: str | None, default: int) -> int:
    """An integer query argument."""
    try:
        return int(text) if text else default
    except ValueError as error:
        raise HubSpotError(400, f"Invalid number {text!r}") from error
