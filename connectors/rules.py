"""Who is on which team and which CRM activity is which signal: ordered rules, as settings.

Both are the admin's mapping, not a schema constraint. The first rule whose conditions all hold
decides; a user no rule matches gets no team (and is never routed to), an activity no rule
matches is typed `UNMATCHED` and counted by its CRM kind. A condition is a list of patterns,
any of which may match; a key left out (or an empty list) matches anything. A pattern is a
case-insensitive glob matched against the whole value (``*`` any text, ``?`` one character,
``[abc]`` one of them, ``""`` an empty value), or, after ``re:``, a case-insensitive regular
expression (also matched whole). ``{topic}`` in an activity pattern and ``{territory}`` in a
team-name pattern capture that part of the value (in a URL, one path segment or part of one).

Subjects and campaign names are matched before their first ": " (the rest is the topic);
URLs by their path alone: no query string or fragment, no trailing slash, lower case, and
without a leading locale segment such as ``/en`` or ``/de-de`` when ``strip_locale`` is on.

    book = RuleBook(UserSettings(), ActivitySettings())
    values, warnings, unmatched = book.derive(stream, raw)  # {"type": ..., "topic": ..., ...}
    columns, warned, unmatched_counts = book.derive_columns(stream, page)  # a page at once
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

import polars as pl
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from connectors.columns import Warned, by_distinct, distinct_values
from connectors.protocol import RAW_LIMIT, ValueWarning
from connectors.streams import Stream, lookup

__all__ = [
    "DEFAULT_ACTIVITY_RULES",
    "DEFAULT_USER_RULES",
    "UNMATCHED",
    "ActivityFacts",
    "ActivityMatcher",
    "ActivityRule",
    "ActivitySettings",
    "Derived",
    "Patterns",
    "RuleBook",
    "Team",
    "Typed",
    "UserFacts",
    "UserMatcher",
    "UserRule",
    "UserSettings",
    "compile_pattern",
]

_CONFIG = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, hide_input_in_errors=True)
_SETTING_ERROR = "setting"  # handoff.settings reads this error type as a finished message
UNMATCHED = "other"  # the type of an activity no rule matched: it never scores
_CACHE_SIZE = 65_536  # distinct (object, type, subtype, subject, ..., path) keys remembered
_CAPTURES = re.compile(r"\{(topic|territory)\}")
_LOCALE = re.compile(r"[a-z]{2}(?:[-_][a-z]{2,4})?")
_FIELD_PATH = re.compile(r"[A-Za-z]\w*(?:\.[A-Za-z]\w*)?")

_UNREADABLE = (AttributeError, TypeError, KeyError)  # what a value that is no list of teams raises
_URL = 7  # the index of the URL in `ActivityFacts`

Team = Literal["sdr", "ae", "manager", "marketing"]
# what the rules make of a record: our values, warnings, its CRM kind when no rule matched
Derived = tuple[dict[str, Any], tuple[ValueWarning, ...], str | None]


# --- patterns ------------------------------------------------------------------------------


def compile_pattern(pattern: str, segment: bool = False) -> re.Pattern[str]:
    """A glob (or ``re:`` regular expression) as a case-insensitive regex to fullmatch;
    ``segment`` keeps a ``{topic}`` capture inside one URL path segment."""
    if pattern.startswith("re:"):
        return re.compile(pattern[3:], re.IGNORECASE)
    parts = _CAPTURES.split(pattern)
    capture = "[^/]+?" if segment else ".+?"
    regex = "".join(
        f"(?P<{part}>{capture})" if odd else _glob(part) for odd, part in _alternating(parts)
    )
    return re.compile(regex, re.IGNORECASE | re.DOTALL)


def _alternating(parts: Sequence[str]) -> list[tuple[bool, str]]:
    """``re.split`` parts with whether each is a captured name (every second one)."""
    return [(index % 2 == 1, part) for index, part in enumerate(parts)]


def _glob(text: str) -> str:
    """A glob's regex: ``*`` any text, ``?`` one character, ``[...]`` a set, the rest literal."""
    out, i = [], 0
    while i < len(text):
        char = text[i]
        end = text.find("]", i + 2) if char == "[" else -1
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif end > 0:
            body = text[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _compilable(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """Refuse a pattern that does not compile, naming it."""
    for index, pattern in enumerate(patterns):
        try:
            compile_pattern(pattern)
        except re.error as error:
            raise PydanticCustomError(
                _SETTING_ERROR,
                "is not a valid pattern: {got} ({why})",
                {"at": (index,), "got": json.dumps(pattern), "why": str(error)},
            ) from None
    return patterns


def _field_path(name: str) -> str:
    """Accept a field name, or one relationship and its field (``UserRole.Name``)."""
    if not _FIELD_PATH.fullmatch(name):
        raise PydanticCustomError(
            _SETTING_ERROR,
            'must be a field name such as "Division" or "Territory__c", got {got}',
            {"got": json.dumps(name)},
        )
    return name


Patterns = Annotated[tuple[str, ...], AfterValidator(_compilable)]


def _any(patterns: Sequence[re.Pattern[str]], value: str) -> re.Match[str] | None:
    """The first pattern's match of the whole value, or None."""
    for pattern in patterns:
        found = pattern.fullmatch(value)
        if found:
            return found
    return None


# --- users -> teams ------------------------------------------------------------------------


class UserRule(BaseModel):
    """[[users.rules]]: the team of the users it matches (Salesforce: UserRole, Profile,
    Department, Division; HubSpot: team names; both: emails)."""

    model_config = _CONFIG

    team: Team
    roles: Patterns = ()
    profiles: Patterns = ()
    departments: Patterns = ()
    divisions: Patterns = ()
    teams: Patterns = ()
    emails: Patterns = ()


def _user_rule(team: Team, **conditions: tuple[str, ...]) -> UserRule:
    return UserRule(team=team, **conditions)


_MANAGERS = ("*manager*", "*director*", "*leadership*", "vp*", "*vice president*", "head of *")
_SDRS = ("*sdr*", "*bdr*", "*sales development*", "*business development*")
_AES = ("re:(.*\\W)?aes?(\\W.*)?", "*account executive*", "*closer*")
_MARKETING = ("*marketing*", "*demand gen*")
# first match wins: a sales manager is a manager before a seller; a role outranks a department
DEFAULT_USER_RULES: tuple[UserRule, ...] = (
    _user_rule("manager", roles=_MANAGERS),
    _user_rule("sdr", roles=_SDRS),
    _user_rule("ae", roles=_AES),
    _user_rule("marketing", roles=_MARKETING),
    _user_rule("manager", teams=_MANAGERS),
    _user_rule("sdr", teams=_SDRS),
    _user_rule("ae", teams=_AES),
    _user_rule("marketing", teams=_MARKETING),
    _user_rule("sdr", departments=_SDRS),
    _user_rule("ae", departments=_AES),
    _user_rule("marketing", departments=_MARKETING),
    _user_rule("marketing", profiles=_MARKETING),
)


class UserSettings(BaseModel):
    """[users]: which team each CRM user is on, and where their territory comes from.

    Salesforce reads the territory from the User field ``territory_field`` (standard, custom or
    one relationship away); HubSpot from the ``{territory}`` part of the owner's primary team
    name, by the first of ``territory_teams`` that matches it.
    """

    model_config = _CONFIG

    territory_field: Annotated[str, AfterValidator(_field_path)] = "Division"
    territory_teams: Patterns = ("* - {territory}", "*: {territory}", "* {territory}")
    rules: tuple[UserRule, ...] = DEFAULT_USER_RULES


class UserFacts(NamedTuple):
    """What the rules may read of one user (empty text where the CRM has nothing)."""

    role: str = ""
    profile: str = ""
    department: str = ""
    division: str = ""
    teams: tuple[str, ...] = ()  # HubSpot team names, the primary team first
    email: str = ""


_USER_CONDITIONS = {
    "roles": "role",
    "profiles": "profile",
    "departments": "department",
    "divisions": "division",
    "emails": "email",
}


class UserMatcher:
    """`UserSettings` compiled: the team and territory of a user."""

    def __init__(self, settings: UserSettings) -> None:
        self.settings = settings
        self._rules = [(rule.team, _user_conditions(rule)) for rule in settings.rules]
        self._territories = [compile_pattern(p) for p in settings.territory_teams]

    def team(self, facts: UserFacts) -> Team | None:
        """The team of the first rule the user matches; None when none does."""
        for team, conditions in self._rules:
            if all(_user_holds(name, patterns, facts) for name, patterns in conditions):
                return team
        return None

    def territory_of_team(self, teams: Sequence[str]) -> str | None:
        """The ``{territory}`` part of the primary (first) team's name, if a pattern finds it."""
        found = _any(self._territories, teams[0]) if teams else None
        return found.groupdict().get("territory") if found else None


def _user_conditions(rule: UserRule) -> list[tuple[str, list[re.Pattern[str]]]]:
    keys = ("teams", *_USER_CONDITIONS)
    return [
        (key, [compile_pattern(p) for p in getattr(rule, key)])
        for key in keys
        if getattr(rule, key)
    ]


def _user_holds(key: str, patterns: Sequence[re.Pattern[str]], facts: UserFacts) -> bool:
    if key == "teams":
        return any(_any(patterns, name) for name in facts.teams)
    return _any(patterns, getattr(facts, _USER_CONDITIONS[key])) is not None


# --- activity -> signal --------------------------------------------------------------------


class ActivityRule(BaseModel):
    """[[activity.rules]]: the signal (activity type) of the CRM activity it matches, whether it
    is a rep's own touch, and whether it carries a content topic."""

    model_config = _CONFIG

    signal: Annotated[str, Field(min_length=1)]
    rep_touch: bool = False
    topic: bool = False
    objects: Patterns = ()
    types: Patterns = ()
    subtypes: Patterns = ()
    subjects: Patterns = ()
    campaign_types: Patterns = ()
    campaigns: Patterns = ()
    events: Patterns = ()
    urls: Patterns = ()


def _touch(
    signal: str, rep: bool = False, topic: bool = False, **when: tuple[str, ...]
) -> ActivityRule:
    return ActivityRule(signal=signal, rep_touch=rep, topic=topic, **when)


# (Task Type, Subject before ": ", signal): how marketing automation logs touches in Salesforce
_SALESFORCE_TOUCHES = (
    ("Form Submission", "Requested a demo", "demo_request"),
    ("Web Visit", "Visited pricing page", "pricing_page"),
    ("Form Submission", "Signed up for a trial", "trial_signup"),
    ("Form Submission", "Contacted sales", "contact_sales"),
    ("Webinar", "Registered for webinar", "webinar"),
    ("Web Visit", "Viewed case study", "case_study"),
    ("Web Visit", "Visited product page", "product_page"),
    ("Content Download", "Downloaded whitepaper", "whitepaper"),
    ("Web Visit", "Read blog post", "blog_visit"),
    ("Email Engagement", "Opened marketing email", "email_open"),
    ("Email Engagement", "Clicked marketing email link", "email_click"),
)
# (eventType, URL path, signal): how HubSpot's event analytics shows web and marketing touches
_HUBSPOT_TOUCHES = (
    ("e_submitted_form", "/demo", "demo_request"),
    ("e_visited_page", "/pricing", "pricing_page"),
    ("e_submitted_form", "/trial", "trial_signup"),
    ("e_submitted_form", "/contact-sales", "contact_sales"),
    ("e_submitted_form", "/webinars/{topic}", "webinar"),
    ("e_visited_page", "/customers/{topic}", "case_study"),
    ("e_visited_page", "/product", "product_page"),
    ("e_submitted_form", "/resources/whitepapers/{topic}", "whitepaper"),
    ("e_visited_page", "/blog/{topic}", "blog_visit"),
    ("e_clicked_marketing_email", "/newsletter", "email_click"),
)
_ACTIVITIES = ("Task", "Event")
_TOUCH_STREAMS = ("events", "email_events")  # HubSpot streams of touches in the events API's shape
DEFAULT_ACTIVITY_RULES: tuple[ActivityRule, ...] = (
    *(
        _touch(signal, topic=True, objects=_ACTIVITIES, types=(kind,), subjects=(stem,))
        for kind, stem, signal in _SALESFORCE_TOUCHES
    ),
    *(
        _touch(signal, topic=True, objects=_TOUCH_STREAMS, events=(event,), urls=(path,))
        for event, path, signal in _HUBSPOT_TOUCHES
    ),
    _touch("email_open", objects=_TOUCH_STREAMS, events=("e_opened_marketing_email",)),
    # mass and automated email (List Email, Sales Engagement cadences) is no rep's own touch
    _touch("email", objects=("Task",), subtypes=("ListEmail",)),
    _touch("call", objects=("Task",), subtypes=("Cadence",), types=("Call",)),
    _touch("email", objects=("Task",), subtypes=("Cadence",)),
    _touch("call", rep=True, objects=_ACTIVITIES, types=("Call",)),
    _touch("call", rep=True, objects=("Task",), subtypes=("Call",)),
    _touch("email", rep=True, objects=_ACTIVITIES, types=("Email",)),
    _touch("email", rep=True, objects=("Task",), subtypes=("Email",)),
    _touch("meeting", rep=True, objects=_ACTIVITIES, types=("Meeting",)),
    _touch("meeting", rep=True, objects=("Event",), types=("",)),
    # HubSpot engagements: a call or meeting a rep logged, an email a rep sent (or received)
    _touch("call", rep=True, objects=("calls",)),
    _touch("meeting", rep=True, objects=("meetings",)),
    _touch("email", rep=True, objects=("emails",), subtypes=("EMAIL", "")),
    _touch("email", objects=("emails",)),
)


class ActivitySettings(BaseModel):
    """[activity]: which CRM activity is which signal, tried in order (see the module)."""

    model_config = _CONFIG

    strip_locale: bool = True
    rules: tuple[ActivityRule, ...] = DEFAULT_ACTIVITY_RULES


class ActivityFacts(NamedTuple):
    """What the rules may read of one activity (empty text where the CRM has nothing)."""

    # Task, Event, CampaignMember; calls, emails, meetings, notes, tasks, events, email_events
    object: str = ""
    type: str = ""  # Salesforce Type
    subtype: str = ""  # Salesforce TaskSubtype / EventSubtype; HubSpot email or call direction
    subject: str = ""  # Subject, an engagement's title, a web event's page title
    campaign_type: str = ""  # CampaignMember: Campaign.Type
    campaign: str = ""  # CampaignMember: Campaign.Name
    event: str = ""  # HubSpot eventType
    url: str = ""  # HubSpot hs_url


class Typed(NamedTuple):
    """What a rule made of an activity."""

    signal: str
    rep_touch: bool
    topic: str | None


_ACTIVITY_CONDITIONS = (
    ("objects", "object"),
    ("types", "type"),
    ("subtypes", "subtype"),
    ("subjects", "subject"),
    ("campaign_types", "campaign_type"),
    ("campaigns", "campaign"),
    ("events", "event"),
    ("urls", "url"),
)
_Conditions = tuple[tuple[int, tuple[re.Pattern[str], ...]], ...]


class ActivityMatcher:
    """`ActivitySettings` compiled, with a cache per distinct activity kind (a pull of a
    million activities holds a few hundred kinds) and per distinct URL."""

    def __init__(self, settings: ActivitySettings) -> None:
        self.settings = settings
        self._rules = [(rule, _activity_conditions(rule)) for rule in settings.rules]
        self._rule_of = lru_cache(maxsize=_CACHE_SIZE)(self._first_rule)
        self._path = lru_cache(maxsize=_CACHE_SIZE)(self._url_path)

    def match(self, facts: Sequence[str]) -> Typed | None:
        """The signal, rep touch and topic of the first rule the activity matches, or None;
        ``facts`` in `ActivityFacts` order."""
        # the hot path of every activity pull: one cache look-up per record, no helper calls
        obj, kind, subtype, subject, campaign_type, campaign, event, url = facts
        subject, _, subject_topic = subject.partition(": ")
        campaign, _, campaign_topic = campaign.partition(": ")
        path = self._path(url) if url else ""
        found = self._rule_of((obj, kind, subtype, subject, campaign_type, campaign, event, path))
        if found is None:
            return None
        signal, rep_touch, topic, url_topic = found
        if not topic:
            return Typed(signal, rep_touch, None)
        return Typed(
            signal, rep_touch, (url_topic or subject_topic or campaign_topic).lower() or None
        )

    def _first_rule(self, key: tuple[str, ...]) -> tuple[str, bool, bool, str] | None:
        """The first rule whose conditions hold: its signal, rep touch, whether it reads a
        topic, and the topic its URL pattern captured."""
        for rule, conditions in self._rules:
            url_topic = _holds(conditions, key)
            if url_topic is not None:
                return rule.signal, rule.rep_touch, rule.topic, url_topic
        return None

    def _url_path(self, url: str) -> str:
        """A URL's path as rules see it (see the module docstring)."""
        if not url:
            return ""
        try:
            path = urlsplit(url).path.lower().rstrip("/")
        except ValueError:  # not a URL at all ("http://[::1"): nothing to match
            return ""
        if self.settings.strip_locale:
            head, _, rest = path.removeprefix("/").partition("/")
            path = f"/{rest}" if rest and _LOCALE.fullmatch(head) else path
        return path or "/"


def _activity_conditions(rule: ActivityRule) -> _Conditions:
    """(fact index, patterns) for each condition the rule sets."""
    fields = ActivityFacts._fields
    return tuple(
        (fields.index(fact), tuple(compile_pattern(p, key == "urls") for p in getattr(rule, key)))
        for key, fact in _ACTIVITY_CONDITIONS
        if getattr(rule, key)
    )


def _holds(conditions: _Conditions, key: Sequence[str]) -> str | None:
    """None unless every condition holds; then the URL's ``{topic}`` ("" when none)."""
    topic = ""
    for index, patterns in conditions:
        found = _any(patterns, key[index])
        if found is None:
            return None
        topic = found.groupdict().get("topic") or topic
    return topic


# --- both, per stream ----------------------------------------------------------------------


class RuleBook:
    """The rules of one connector: which CRM fields they read, and what they make of a record.

    A stream's ``facts`` name the CRM fields behind `ActivityFacts` / `UserFacts`; the book
    adds the configured territory field to a Salesforce ``User`` pull.
    """

    def __init__(
        self, users: UserSettings | None = None, activity: ActivitySettings | None = None
    ) -> None:
        self.users = UserMatcher(users or UserSettings())
        self.activity = ActivityMatcher(activity or ActivitySettings())
        self._readers: dict[str, list[tuple[int, str, str, str]]] = {}

    def fields(self, stream: Stream) -> list[str]:
        """The CRM fields the rules read of ``stream``, beyond its field maps."""
        names = list(stream.facts.values())
        if stream.typed_by == "user" and "teams" not in stream.facts:
            names.append(self.users.settings.territory_field)
        return list(dict.fromkeys(names))

    def derive(self, stream: Stream, raw: Mapping[str, Any]) -> Derived:
        """The values the rules give a raw record, a warning for each of them a dirty fact left
        None, and the record's CRM kind when no rule matched."""
        if stream.typed_by == "activity":
            return self._activity(stream, raw)
        if stream.typed_by == "user":
            return self._user(stream, raw)
        return {}, (), None

    def derive_columns(
        self, stream: Stream, page: pl.DataFrame
    ) -> tuple[pl.DataFrame, Warned, Counter[str]]:
        """`derive` of every row of a page of raw text columns, run once per distinct tuple of
        the fields the rules read: the values as columns, the warnings by row, and how many
        rows of each CRM kind no rule matched."""
        if stream.typed_by is None:
            return pl.DataFrame(), {}, Counter()
        names = [name for name in self.fields(stream) if name in page.columns]
        results, index = by_distinct(
            [page[name] for name in names],
            lambda *values: self.derive(stream, dict(zip(names, values, strict=True))),
        )
        keys = results[0][0] if results else {}
        values = pl.DataFrame(
            [distinct_values([r[0][key] for r in results], index).alias(key) for key in keys]
        )
        counts = dict(index.value_counts().iter_rows())
        unmatched: Counter[str] = Counter()
        for at, (_, _, kind) in enumerate(results):
            if kind:
                unmatched[kind] += counts[at]
        dirty = [at for at, (_, warnings, _) in enumerate(results) if warnings]
        rows = index.is_in(dirty).arg_true().to_list() if dirty else []
        warned = {row: results[index[row]][1] for row in rows}
        return values, warned, unmatched

    def _activity(self, stream: Stream, raw: Mapping[str, Any]) -> Derived:
        facts = [stream.path, "", "", "", "", "", "", ""]
        for index, name, head, rest in self._reader(stream):
            value = raw.get(name)
            if value is None and rest:  # a JSON relationship (CSV names the column whole)
                inner = raw.get(head)
                value = inner.get(rest) if isinstance(inner, dict) else None
            if value is not None:
                facts[index] = str(value)
        typed = self.activity.match(facts)
        if typed is not None:
            values = {"type": typed.signal, "topic": typed.topic, "rep_touch": typed.rep_touch}
            return values, (), None
        unreadable = _url_error(facts[_URL])
        if unreadable is not None:  # no rule could read the URL: no type, rather than "other"
            warned = _unreadable(("type", "topic"), facts[_URL], unreadable)
            return {"type": None, "topic": None, "rep_touch": False}, warned, _kind(facts)
        return {"type": UNMATCHED, "topic": None, "rep_touch": False}, (), _kind(facts)

    def _reader(self, stream: Stream) -> list[tuple[int, str, str, str]]:
        """(fact index, CRM field, relationship, its field) per fact the stream names."""
        if stream.name not in self._readers:
            self._readers[stream.name] = [
                (ActivityFacts._fields.index(fact), name, *_split(name))
                for fact, name in stream.facts.items()
            ]
        return self._readers[stream.name]

    def _user(self, stream: Stream, raw: Mapping[str, Any]) -> Derived:
        if "teams" in stream.facts:
            value = lookup(raw, stream.facts["teams"])
            try:
                teams = _team_names(value)
            except _UNREADABLE as error:  # no list of teams: no team, and a warning
                warned = _unreadable(("role", "territory"), value, error)
                return {"role": None, "territory": None}, warned, stream.path
            facts = UserFacts(teams=teams, email=_text(raw, stream.facts.get("email", "")))
            territory = self.users.territory_of_team(teams)
        else:
            named = {k: _text(raw, v) for k, v in stream.facts.items()}
            facts = UserFacts(**named)
            territory = _text(raw, self.users.settings.territory_field) or None
        team = self.users.team(facts)
        return {"role": team, "territory": territory}, (), None if team else stream.path


def _split(name: str) -> tuple[str, str]:
    head, _, rest = name.partition(".")
    return head, rest


def _kind(facts: Sequence[str]) -> str:
    """An unmatched activity's CRM kind, for the pull's summary: "Task / Web Visit / Task"."""
    obj, kind, subtype, _, campaign_type, _, event, _ = facts
    return " / ".join(filter(None, (obj, kind, subtype, campaign_type, event)))


def _text(raw: Mapping[str, Any], name: str) -> str:
    """A raw field as text, empty when missing."""
    value = lookup(raw, name) if name else None
    return "" if value is None else str(value)


def _team_names(teams: Any) -> tuple[str, ...]:
    """An owner's team names, the primary team first; a value that is no list of teams raises
    (as `connectors.streams` reading the owner's out-of-office team does)."""
    named = [t for t in teams or () if t.get("name")]
    named.sort(key=lambda t: not t.get("primary"))
    return tuple(str(t["name"]) for t in named)


def _url_error(url: str) -> ValueError | None:
    """Why a URL cannot be read (None when it can, or there is none)."""
    try:
        urlsplit(url)
    except ValueError as error:
        return error
    return None


def _unreadable(fields: Sequence[str], raw: Any, error: Exception) -> tuple[ValueWarning, ...]:
    """A warning for each of our ``fields`` a dirty fact left None (worded as
    `connectors.streams.normalise` words an unreadable value, so the summary counts them alike)."""
    why = f"unreadable ({type(error).__name__})"
    return tuple(ValueWarning(field, str(raw)[:RAW_LIMIT], why) for field in fields)
