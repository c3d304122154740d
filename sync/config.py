"""Sync settings: the state database, run cadence, SLAs, routing rules and the feedback loop."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import AfterValidator, BaseModel, Field, field_serializer, model_validator

from scoring.config import SETTINGS_CONFIG, NonEmptyStr, TierKey, setting_error, unique_by

__all__ = [
    "DEFAULT_REASON_CODES",
    "DEFAULT_ROUTING_RULES",
    "Email",
    "FeedbackSettings",
    "MatchingSettings",
    "RoutingRule",
    "RoutingSettings",
    "SlaSettings",
    "StateSettings",
    "SyncSettings",
    "Team",
    "TieBreak",
    "redact_url",
    "unencoded_at",
    "url_has_password",
]

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DOMAIN = re.compile(r"(?:[a-z0-9-]+\.)+[a-z0-9-]+")
_DATABASES = ("sqlite", "postgresql")

Team = Literal["marketing", "sdr", "ae"]
TieBreak = Literal["most_contacts", "most_open_opportunities", "oldest", "review"]


def _email(value: str) -> str:
    """Accept something shaped like an email address; the CRM decides whether the user exists."""
    if not _EMAIL.fullmatch(value):
        raise setting_error("must be an email address, got {got}", got=json.dumps(value))
    return value


Email = Annotated[str, AfterValidator(_email)]


def _split(url: str) -> SplitResult | None:
    """The URL's parts, or None when it cannot be parsed."""
    try:
        parts = urlsplit(url)
        # Only reading .port rejects a port that is not a number or is out of range.
        _ = parts.port
    except ValueError:
        return None
    return parts


def unencoded_at(url: str) -> bool:
    """Whether the URL's user or password holds an ``@`` not written as ``%40``: the database
    drivers read the first ``@`` as the end of the password, so the rest of it would be taken
    for the host and shown in their errors."""
    backend, _, rest = url.partition("://")
    if backend.partition("+")[0] == "sqlite":
        return False  # a file's path: no user, no password, and an '@' is a file name's
    # SQLAlchemy ends the password at its first '@' (it may hold '/' or '?' before it), so any
    # '@' past that one would be read as the host's: refused wherever it stands
    return rest.count("@") > 1


UNENCODED_AT = (
    "has an '@' in its user or password: write it as %40 (percent-encode the user and password)"
)


def url_has_password(url: str) -> bool:
    """Whether a database URL carries a password: after the user (``user:pw@host``) or as a
    query parameter (``?password=pw``, which psycopg reads as libpq does); a URL that cannot be
    parsed, whenever it names a user (``@``)."""
    return redact_url(url) != url


def redact_url(url: str) -> str:
    """The URL with any password, after the user or as a query parameter, replaced by `***`,
    safe to print or log."""
    parts = _split(url)
    if parts is None:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else url
    query = parse_qsl(parts.query, keep_blank_values=True)
    in_query = any(key.lower() == _PASSWORD for key, _ in query)
    if parts.password is None and not in_query:
        return url
    if in_query:
        hidden = [(key, "***" if key.lower() == _PASSWORD else value) for key, value in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    if parts.password is not None:
        user, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}")
    return urlunsplit(parts)


_PASSWORD = "password"  # the query parameter libpq (and psycopg) read a password from


def _database_url(url: str) -> str:
    """Accept a SQLite or PostgreSQL URL (optionally with a driver, e.g. postgresql+psycopg)."""
    backend = url.partition("://")[0].partition("+")[0]
    if "://" not in url or backend not in _DATABASES:
        raise setting_error(
            "must be a sqlite:// or postgresql:// URL, got {got}", got=json.dumps(redact_url(url))
        )
    if _split(url) is None:
        raise setting_error(
            "cannot be read as a URL, got {got}: a '/', '?', '#' or '@' in its user or password "
            "is written %2F, %3F, %23 or %40",
            got=json.dumps(redact_url(url)),
        )
    if unencoded_at(url):
        raise setting_error(UNENCODED_AT)  # the URL itself not shown: its password is in it
    return url


class StateSettings(BaseModel):
    """[state]: where the local sync state lives; a password in the URL never prints."""

    model_config = SETTINGS_CONFIG

    database_url: Annotated[str, AfterValidator(_database_url)] = "sqlite:///handoff.db"

    def __repr_args__(self) -> Iterator[tuple[str, Any]]:
        yield "database_url", redact_url(self.database_url)

    @field_serializer("database_url", when_used="json")
    def _redacted(self, url: str) -> str:
        return redact_url(url)


class SyncSettings(BaseModel):
    """[sync]: how often to run, how much of the API budget to use and what is worth a write."""

    model_config = SETTINGS_CONFIG

    interval_minutes: int = Field(15, gt=0)
    # A full re-pull of the reference org (200,000 companies, 1M contacts, 10M activities) on
    # HubSpot costs about 2,000 + 10,000 list pages of 100, up to 100,000 pages of activities and
    # 20,000 pages of 50 contacts' page-view history: ~132,000 calls. A Professional portal has
    # 500,000-650,000 calls a day (https://developers.hubspot.com/changelog/increasing-our-api-
    # limits), Starter 250,000, shared with every other integration; a run may use
    # `api_budget_share` (25%) of it. Daily would cost 26% of 500,000 (53% of Starter's) every
    # day, and more than one run's share; weekly costs ~19,000 calls a day, under 4% (8% on
    # Starter), while incremental runs and the recycle-bin check catch changes in between.
    full_resync_hours: int = Field(168, gt=0)
    min_score_change: int = Field(3, ge=0, le=100)
    # per-record run events (pulled, linked, written, failed) older than this are deleted at
    # the end of each run; run summaries are kept
    event_retention_days: int = Field(90, gt=0, le=3650)
    dry_run: bool = False
    api_budget_share: float = Field(0.25, gt=0, le=1)
    write_batch_size: int = Field(200, gt=0, le=200)


class SlaSettings(BaseModel):
    """[sla]: first-touch deadlines per tier and what happens on a breach (D9)."""

    model_config = SETTINGS_CONFIG

    ae_minutes: int = Field(15, gt=0)
    sdr_minutes: int = Field(120, gt=0)
    nurture_minutes: int = Field(1440, gt=0)
    escalation: Annotated[tuple[Literal["reassign", "manager_task"], ...], unique_by(None)] = (
        "reassign",
        "manager_task",
    )
    business_hours_only: bool = False


class RoutingRule(BaseModel):
    """[[routing.rules]]: who owns a matching account; every condition set must hold (D8).

    Employees match `min_employees` <= employees < `max_employees`; empty lists match anything.
    """

    model_config = SETTINGS_CONFIG

    name: NonEmptyStr
    team: Team
    tiers: tuple[TierKey, ...] = ()
    regions: tuple[NonEmptyStr, ...] = ()
    countries: tuple[NonEmptyStr, ...] = ()
    min_employees: int | None = Field(None, ge=0)
    max_employees: int | None = Field(None, gt=0)
    product_lines: tuple[NonEmptyStr, ...] = ()
    territory: str | None = Field(None, min_length=1)
    reps: tuple[Email, ...] = ()
    capacity: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _sized(self) -> RoutingRule:
        low, high = self.min_employees, self.max_employees
        if low is not None and high is not None and low >= high:
            raise setting_error(
                "must be below max_employees ({high}), got {low}",
                "min_employees",
                high=high,
                low=low,
            )
        return self


DEFAULT_ROUTING_RULES: tuple[RoutingRule, ...] = (
    RoutingRule(name="AE hand-off", team="ae", tiers=("ae",)),
    RoutingRule(name="SDR prospecting", team="sdr", tiers=("sdr",)),
    RoutingRule(name="Marketing nurture", team="marketing", tiers=("nurture",)),
)


class RoutingSettings(BaseModel):
    """[routing]: how an owner is chosen; the first matching rule wins, else `fallback_owner`."""

    model_config = SETTINGS_CONFIG

    existing_owner_first: bool = True
    round_robin: bool = True
    fallback_owner: Email = "marketing-queue@example.com"
    out_of_office: Annotated[tuple[Email, ...], unique_by(None)] = ()
    rules: Annotated[tuple[RoutingRule, ...], unique_by("name")] = DEFAULT_ROUTING_RULES


DEFAULT_REASON_CODES: tuple[str, ...] = (
    "Wrong Persona",
    "Existing Customer",
    "No Budget",
    "Bad Timing",
    "Competitor",
    "Bad Data",
    "Duplicate",
    "Other",
)


class FeedbackSettings(BaseModel):
    """[feedback]: the reason codes a rep must pick on rejection and when stalled work recycles."""

    model_config = SETTINGS_CONFIG

    reason_codes: Annotated[tuple[NonEmptyStr, ...], Field(min_length=1), unique_by(None)] = (
        DEFAULT_REASON_CODES
    )
    recycle_after_days: int = Field(30, gt=0)


def _domain(value: str) -> str:
    """Accept a bare domain such as "example.com", folded to lower case."""
    folded = value.strip().lower()
    if not _DOMAIN.fullmatch(folded):
        raise setting_error('must be a domain like "example.com", got {got}', got=json.dumps(value))
    return folded


def _review_last(tie_breaks: tuple[TieBreak, ...]) -> tuple[TieBreak, ...]:
    """Refuse tie-breaks after "review": they could never be reached."""
    if "review" in tie_breaks[:-1]:
        raise setting_error(
            'must end at "review" (later tie-breaks are never reached), got {got}',
            got=json.dumps(list(tie_breaks)),
        )
    return tie_breaks


class MatchingSettings(BaseModel):
    """[matching]: how leads and contacts are linked to their accounts (D3)."""

    model_config = SETTINGS_CONFIG

    fuzzy_threshold: int = Field(92, ge=50, le=100)
    min_confidence: float = Field(0.7, ge=0, le=1)
    personal_domains_extra: Annotated[
        tuple[Annotated[str, AfterValidator(_domain)], ...], unique_by(None)
    ] = ()
    tie_breaks: Annotated[tuple[TieBreak, ...], unique_by(None), AfterValidator(_review_last)] = (
        "most_contacts",
        "most_open_opportunities",
        "oldest",
    )
