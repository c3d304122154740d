"""How a real org labels its users, messily: role names, profiles, departments and team names.

The org knows each user's team (sdr, ae, manager, marketing) and territory; a real CRM does not
say it plainly. A Salesforce user has a UserRole named "Account Executive - EMEA", "Sr. AE, NA"
or none at all, a Profile, and a free-text Department ("Sales", "Inside Sales - EMEA", or
null); a HubSpot owner belongs to a team named "SDR EMEA", "Sales Development - APAC" or
"Sales Team LATAM". Which label a user gets is fixed by their id, so every rendering of the
same org labels it alike. The connectors' default rules recover the team from most of these;
the rest (a role left empty, a team named by neither role nor function) are what an admin
maps in settings.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

__all__ = ["DEPARTMENTS", "PROFILES", "ROLE_NAMES", "TEAM_NAMES", "user_labels"]

# team -> UserRole names ("{t}" is the territory; None: the user has no role)
ROLE_NAMES: Mapping[str, tuple[str | None, ...]] = {
    "sdr": (
        "SDR - {t}",
        "Sales Development Rep {t}",
        "BDR",
        "Business Development Representative - {t}",
        "SDR - {t}",
        None,
    ),
    "ae": (
        "Account Executive - {t}",
        "AE {t}",
        "Enterprise Account Executive",
        "Sr. AE, {t}",
        "Account Executive - {t}",
        None,
    ),
    "manager": ("Sales Manager - {t}", "Director of Sales, {t}", "VP Sales", "Head of Sales {t}"),
    "marketing": ("Marketing", "Marketing Ops", "Demand Generation", None),
}
# team -> Department values (free text in Salesforce, often empty)
DEPARTMENTS: Mapping[str, tuple[str | None, ...]] = {
    "sdr": ("Sales", "Inside Sales - {t}", "Sales", None, "SDR"),
    "ae": ("Sales", "Field Sales", "Sales - {t}", None),
    "manager": ("Sales", "Sales Leadership", None),
    "marketing": ("Marketing", None, "Marketing"),
}
PROFILES: Mapping[str, tuple[str, ...]] = {
    "sdr": ("Sales User", "Standard User"),
    "ae": ("Sales User", "Standard User"),
    "manager": ("Standard User", "System Administrator"),
    "marketing": ("Marketing User",),
}
# team -> HubSpot primary team names
TEAM_NAMES: Mapping[str, tuple[str, ...]] = {
    "sdr": ("SDR {t}", "Sales Development - {t}", "BDR Team {t}"),
    "ae": ("AE {t}", "Account Executives - {t}", "AE {t}", "Sales Team {t}"),
    "manager": ("Sales Managers {t}", "Sales Leadership - {t}"),
    "marketing": ("Marketing", "Marketing {t}", "Demand Gen"),
}
_QUEUE = {"_role_name": None, "_department": "Marketing", "_profile": "Marketing User"}


def _label(
    choices: Mapping[str, tuple[str | None, ...]], role: str, territory: str, n: int
) -> str | None:
    """The user's label: picked by their number among the team's variants."""
    options = choices[role]
    chosen = options[n % len(options)]
    return None if chosen is None else chosen.replace("{t}", territory)


def user_labels(users: pl.DataFrame) -> pl.DataFrame:
    """``users`` with ``_role_name``, ``_department``, ``_profile`` and ``_team_name``."""
    rows = users.select("user_id", "role", "territory").iter_rows()
    labels = [
        {
            "_role_name": _label(ROLE_NAMES, role, territory, number),
            "_department": _label(DEPARTMENTS, role, territory, number // 2),
            "_profile": _label(PROFILES, role, territory, number // 3),
            "_team_name": _label(TEAM_NAMES, role, territory, number),
            **(_QUEUE if number == 0 else {}),
        }
        for number, role, territory in rows
    ]
    schema = dict.fromkeys(("_role_name", "_department", "_profile", "_team_name"), pl.String)
    return pl.concat([users, pl.DataFrame(labels, schema=schema)], how="horizontal")
