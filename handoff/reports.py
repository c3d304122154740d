"""What `handoff sync`, `setup`, `logs`, `explain` and `score` print, in words RevOps reads.

The figures come from `sync` (`RunReport`, `sync.runlog.RunSummary`, `sync.explain`) and the
connectors (`SchemaReport`); this module
only lays them out: "Pulled: companies 2,000 (12 calls)", never a raw counter key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from connectors.protocol import SchemaChange, SchemaReport
from connectors.schema import OWNED_FIELDS
from scoring.explain import phrase_of
from scoring.scorecard import SCORE_MAX
from sync.explain import (
    AccountExplanation,
    MirrorScores,
    PersonLink,
    RankedAccount,
    account_domains,
)
from sync.run import EXIT_CODES, RunReport
from sync.runlog import RunSummary
from sync.state import RunEvent

__all__ = [
    "bounds_note",
    "event_json",
    "joined",
    "print_explanation",
    "print_mirror_scores",
    "print_people",
    "print_run_report",
    "print_run_summary",
    "print_runs",
    "print_schema_report",
    "schema_summary",
    "shown_times",
    "summary_json",
]

_HISTORY_SHOWN = 20
_PEOPLE_SHOWN = 25


def joined(counts: Mapping[str, int | float]) -> str:
    """`AE 12, SDR 30`, or none."""
    return ", ".join(f"{key} {value:,}" for key, value in counts.items()) or "none"


def _reason(key: str) -> str:
    """`company_not_in_crm` -> `company not in CRM`."""
    return key.replace("_", " ").replace("crm", "CRM")


def _outcome(summary: RunSummary) -> str:
    """`ok`, `ok, full re-pull`, `partial, dry run`."""
    notes = [note for note, on in (("full", summary.full), ("dry run", summary.dry_run)) if on]
    return ", ".join([summary.outcome, *notes])


def print_runs(console: Console, runs: Iterable[RunSummary]) -> None:
    """One line a run, newest first, under a title naming the CRM (`handoff logs RUN` shows one
    in full)."""
    runs = list(runs)
    crms = ", ".join(sorted({run.connector for run in runs}))
    table = Table(
        title=f"Sync runs ({crms}), newest first" if crms else "Sync runs, newest first",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        collapse_padding=True,
    )
    columns = ("run", "started", "outcome", "pulled", "written", "failed", "calls", "s")
    for column in columns:
        justify = "left" if column in ("run", "started", "outcome") else "right"
        table.add_column(column, justify=justify, no_wrap=True)
    for run in runs:
        table.add_row(
            run.run[:8],
            f"{run.started_at:%d %b %H:%M}",
            _outcome(run),
            f"{run.records_pulled:,}",
            f"{run.records_written:,}",
            f"{run.failed:,}",
            f"{run.api_calls:,}",
            f"{sum(run.seconds.values()):.1f}",
        )
    console.print(table)


def print_run_summary(console: Console, run: RunSummary, problems: list[RunEvent]) -> None:
    """One run in full: its figures line by line, then its failed and skipped records."""
    finished = f" -> {run.finished_at:%H:%M:%S}" if run.finished_at else ""
    org = f" org {run.org_id}" if run.org_id else ""
    console.print(
        f"Run {run.run} ({run.connector}{org}), started {run.started_at:%d %b %Y %H:%M:%S}"
        f"{finished} UTC: {_outcome(run)}",
        soft_wrap=True,
    )
    for label, text in _run_lines(run):
        console.print(f"  {label + ':':<11} {text}", soft_wrap=True, highlight=False)
    _print_problems(console, problems)


def _run_lines(run: RunSummary) -> list[tuple[str, str]]:
    """(label, text) of each figure of a run, in pipeline order."""
    lines = []
    if run.full_reason:
        ended = run.outcome in ("ok", "partial")
        done = "re-pulled every record" if ended else "a re-pull of every record, not finished"
        lines.append(("Full", f"{done}: {run.full_reason}"))
    if run.error:
        lines.append(("Failed" if run.outcome == "failed" else "Stopped", run.error))
    lines += [
        ("Pulled", _pulled(run)),
        ("People", _linked(run)),
        ("Scored", _scored(run)),
        *_model(run),
        *_trained(run),
        ("Tiers", f"{run.tier_up:,} moved up, {run.tier_down:,} moved down"),
        ("Written", _written(run)),
        ("API calls", _calls(run.api_calls, run.budget_left)),
        ("Time", _times(run.seconds)),
    ]
    if run.events_forgotten:
        lines.append(("Log", f"{run.events_forgotten:,} per-record events past retention deleted"))
    return lines


def _model(run: RunSummary) -> list[tuple[str, str]]:
    """The model that scored the run and why (none for a run kept from before 0020, or one
    that stopped before it scored)."""
    version, reason = run.model_version, run.model_reason
    if version is None:
        return []
    # the reasons name the version ("the predictive model 20261101-... scores"): said once
    return [("Model", reason if reason and version in reason else f"{version}: {reason or '-'}")]


def _trained(run: RunSummary) -> list[tuple[str, str]]:
    """The model the run fitted, if it did (`handoff sync` printed why it was kept or not);
    nothing more when the model line says it ("trained this run: ... replaces ...")."""
    if not run.trained:
        return []
    if run.promoted:
        if (run.model_reason or "").startswith("trained this run"):
            return []
        return [("Trained", "the predictive model, promoted: it scored this run")]
    return [("Trained", "the predictive model, kept aside: `handoff score` says why")]


def _pulled(run: RunSummary) -> str:
    """`companies 2,000 (12 calls), contacts 9,000 (90 calls); 3 deleted or merged`."""
    streams = ", ".join(
        f"{stream} {figures.get('records', 0):,} ({_plural(figures.get('calls', 0), 'call')})"
        for stream, figures in run.pulled.items()
    )
    extras = {
        "deleted or merged": sum(f.get("tombstones", 0) for f in run.pulled.values()),
        "read again, unchanged": _read_again(run.pulled),
        "skipped as unreadable": sum(f.get("skipped", 0) for f in run.pulled.values()),
    }
    more = "; ".join(f"{n:,} {what}" for what, n in extras.items() if n)
    return (streams or "nothing") + (f"; {more}" if more else "")


def _plural(count: int, noun: str) -> str:
    """`1 call`, `12 calls`."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _linked(run: RunSummary) -> str:
    orphans = sum(run.orphans.values())
    by_reason = ", ".join(f"{_reason(r)} {n:,}" for r, n in run.orphans.items())
    reasons = f" ({by_reason})" if by_reason else ""
    return (
        f"{run.linked:,} linked to an account; review queue {run.review:,}; orphans "
        f"{orphans:,}{reasons}"
    )


def _read_again(pulled: Mapping[str, Mapping[str, int]]) -> int:
    """Records the overlap windows read again at the version the mirror holds (our own writes
    among them), over a run's streams."""
    return sum(figures.get("reread_skipped", 0) for figures in pulled.values())


# people scored on their own: the orphans and the people in the review queue (who count for no
# account until a reviewer picks one), which the link figures count apart
_UNLINKED = "people without an account"  # leads on Salesforce, contacts on HubSpot
# said where they are scored: the link stage's orphans and the people awaiting review
_UNLINKED_WHO = f"{_UNLINKED} (orphans, and people for review)"


def _scored(run: RunSummary) -> str:
    """`120 accounts, 32 people without an account; tiers Nurture 98, ...` (those people named
    when scored: the orphans and the people in review, which the link line counts apart)."""
    orphans = f", {run.orphans_scored:,} {_UNLINKED_WHO}" if run.orphans_scored else ""
    return f"{run.scored:,} accounts{orphans}; tiers {joined(run.tiers)}"


def _written(run: RunSummary) -> str:
    if run.dry_run:
        return f"nothing (dry run); {run.planned:,} records would have been"
    orphans = f"; {run.orphans_written:,} {_UNLINKED}" if run.orphans_written else ""
    streams = f" ({joined(run.written)}{orphans})" if run.written else ""
    return (
        f"{run.records_written:,}{streams}; {run.unchanged:,} already up to date; "
        f"{run.held_back:,} held back; {run.failed:,} failed"
    )


def shown_times(seconds: Mapping[str, float]) -> tuple[dict[str, float], int]:
    """A run's seconds by stage as reports show them, rounded to a tenth, without the stages
    that round to nothing (a cycle with nothing new does not list "score 0.0 s, tier 0.0 s",
    nor a run that did not train "train 0.0 s"); and how many stages were so left out."""
    rounded = {stage: round(s, 1) for stage, s in seconds.items()}
    shown = {stage: s for stage, s in rounded.items() if s}
    return shown, len(rounded) - len(shown)


def _times(seconds: Mapping[str, float]) -> str:
    """`mirror 1.2 s, write 0.9 s; 5 stages under 0.05 s each`."""
    if not seconds:  # a run still running, or killed before its log
        return "not recorded"
    shown, left_out = shown_times(seconds)
    if not shown and len(seconds) == 1:  # a run refused before it began: its check, named
        return f"{next(iter(seconds))} under 0.05 s"
    if not shown:
        return f"all {left_out} stages under 0.05 s each"
    said = ", ".join(f"{stage} {s:.1f} s" for stage, s in shown.items())
    if left_out:
        said += f"; {left_out} stage{'s' if left_out > 1 else ''} under 0.05 s each"
    return said


def _calls(calls: int, left: int | None) -> str:
    budget = "" if left is None else f"; {left:,} left in this run's budget"
    return f"{calls:,}{budget}"


def _print_problems(console: Console, problems: list[RunEvent]) -> None:
    failed = [e for e in problems if e.action == "failed"]
    skipped = [e for e in problems if e.action == "skipped"]
    if not problems:
        console.print("No failed or skipped records.")
    if failed:
        table = Table(title="Failed records (the CRM's answer)")
        for column in ("object", "record", "CRM code", "message"):
            table.add_column(column)
        for e in failed:
            table.add_row(e.object or "", e.record_id or "", e.reason or "", e.detail or "")
        console.print(table)
    if skipped:
        table = Table(title="Skipped records")
        for column in ("stage", "object", "record", "why"):
            table.add_column(column)
        for e in skipped:
            table.add_row(e.stage, e.object or "", e.record_id or "", e.reason or "")
        console.print(table)


def summary_json(run: RunSummary) -> str:
    """One JSON line for a run."""
    return json.dumps(run.as_json(), sort_keys=True)


def event_json(event: RunEvent) -> str:
    """One JSON line for a per-record event."""
    plain: dict[str, Any] = event.model_dump(exclude={"id"})
    plain["at"] = event.at.isoformat()
    return json.dumps(plain, sort_keys=True)


def print_explanation(console: Console, found: AccountExplanation) -> None:
    """An account's score, its contributions, score history, people and nearby orphans."""
    account = found.account
    # the domain as `handoff score` shows it: a website read as matching reads it (a Salesforce
    # account holds "https://acme.se/?utm_source=crm" where HubSpot holds acme.se)
    where = account_domains([account])[account.id] or account.website or "no domain"
    console.print(f"{account.name} ({account.id}, {where})", soft_wrap=True, highlight=False)
    disqualified = (
        f", disqualified: {found.disqualified_reason}" if found.disqualified_reason else ""
    )
    topic = f", topic {found.topic}" if found.topic else ""
    console.print(
        f"Score {found.score} ({found.tier_label}){disqualified}{topic}, as of "
        f"{found.scored_at:%d %b %Y %H:%M} UTC, model {found.model_version} "
        f"({found.model_kind})",
        soft_wrap=True,
        highlight=False,
    )
    console.print(f"  {found.model_reason}", soft_wrap=True, highlight=False)
    _print_contributions(console, found)
    _print_history(console, found)
    print_people(console, "Linked people", found.people, orphans=False)
    print_people(
        console, "Nearby orphans", found.nearby_orphans, orphans=True, note=found.nearby_method
    )


def _print_contributions(console: Console, found: AccountExplanation) -> None:
    """The reasons with their points (the CRM's sentences show them whole), then, unless the
    account is disqualified, the base and the reasons under half a point, so the points add up
    to the score."""
    table = Table(title="Why this score (strongest first)")
    table.add_column("points", justify="right")
    table.add_column("reason")
    for item in found.contributions:
        table.add_row(f"{item.points:+.1f}", phrase_of(item.sentence))
    if not found.contributions:
        table.add_row("", "no signal or firmographic worth half a point")
    if not found.disqualified_reason:
        table.add_section()
        table.add_row(f"{found.base_points:.1f}", "base: where every account starts")
        if abs(found.smaller_points) >= 0.05:
            table.add_row(f"{found.smaller_points:+.1f}", "reasons under half a point each")
        table.add_row(f"= {found.score}", f"score ({found.tier_label})")
    console.print(table)
    bounded = bounds_note(found)
    if bounded:
        console.print(f"  {bounded}", soft_wrap=True, highlight=False)


def bounds_note(found: AccountExplanation) -> str | None:
    """Why the points shown differ from the same reasons' points elsewhere (the history, another
    account): off the 0-100 scale, they were shrunk in proportion to add up to the score."""
    raw = found.points_before_bounds
    if found.disqualified_reason or not _past_end(raw):
        return None
    end, side = (SCORE_MAX, "positive") if raw > SCORE_MAX else (0.0, "negative")
    return (
        f"The points came to {_whole(raw)}, past the scale's end at {end:g}: each {side} reason's "
        f"points are shrunk in proportion so that they add up to the score (with those under "
        f"half a point, not listed), so a reason can show fewer points here than in the history."
    )


def _print_history(console: Console, found: AccountExplanation) -> None:
    """One line a written score: when, score, tier, model, and the account it was written on."""
    console.print("Score history, newest first (what was written to the CRM):")
    for entry in found.history[:_HISTORY_SHOWN]:
        merged = "" if entry.account_id == found.account.id else f"  merged from {entry.account_id}"
        reason = f"  {entry.reasons[0]}" if entry.reasons else ""
        _line(
            console,
            f"  {entry.scored_at:%d %b %Y %H:%M}  {entry.score:>3g}  {entry.tier:<12} "
            f"{entry.model_version}{merged}{reason}",
        )
    if not found.history:
        console.print("  never written yet")
    if len(found.history) > _HISTORY_SHOWN:
        console.print(f"  and {len(found.history) - _HISTORY_SHOWN:,} older")


def print_people(
    console: Console,
    title: str,
    people: tuple[PersonLink, ...],
    *,
    orphans: bool,
    note: str | None = None,
) -> None:
    """One line a person: id, kind, name and email, the link rule and its confidence, and the
    person listed before with the same email (a duplicate record: a rep would otherwise take
    the two lines for one person listed twice); ``note`` after the title says who is listed."""
    said = f" {note}" if note else ""
    console.print(f"{title} ({len(people):,}):{said}", soft_wrap=True, highlight=False)
    first_with: dict[str, str] = {}  # a lowercased email -> the first person listed with it
    for person in people[:_PEOPLE_SHOWN]:
        confidence = "" if person.confidence is None else f" {person.confidence:.2f}"
        email = f" <{person.email}>" if person.email else ""
        name = f" {person.name}" if person.name else ""
        line = f"  {person.id} {person.kind}{name}{email}  {person.rule or ''}{confidence}"
        if orphans:
            line += f'  company "{person.company or ""}"; orphan: {person.orphan_reason}'
        if person.email:
            first = first_with.setdefault(person.email.casefold(), person.id)
            if first != person.id:
                line += f"  (same email as {first}: another record, perhaps a duplicate)"
        _line(console, line)
    if len(people) > _PEOPLE_SHOWN:
        console.print(f"  and {len(people) - _PEOPLE_SHOWN:,} more")


def _line(console: Console, text: str) -> None:
    """A line as it is: not wrapped (so ids and emails stay whole), no colour guessed."""
    console.print(text, soft_wrap=True, highlight=False, markup=False)


_NAME_WIDTH = 10  # the least a name column keeps in a narrow terminal
_WORD_WIDTH = 20  # the most a name column keeps for its longest word before domains are cut


def print_mirror_scores(console: Console, preview: MirrorScores) -> None:
    """Tier counts, which model scored and why, and the top accounts."""
    book = preview.book
    console.print(
        f"Scored {len(book.account_ids):,} accounts from the mirror with "
        f"{book.scores.model_version} ({book.model_kind}); nothing pulled or written",
        soft_wrap=True,
    )
    console.print(f"  {preview.model_reason}", soft_wrap=True, highlight=False)
    console.print(f"Tiers: {joined(preview.tiers)}")
    table = Table(title=f"Top {len(preview.top)} accounts")
    name_width, domain_width = _widths(console.width, preview.top)
    for column in ("account", "name", "domain", "score", "tier"):
        # ids, scores and tiers kept whole, domains too while the name keeps its longest word
        # whole (`_widths`; then they are cut short: …); a name wraps at its spaces, folded
        # only where one word is longer than its column
        justify = "right" if column == "score" else "left"
        table.add_column(
            column,
            justify=justify,
            no_wrap=column != "name",
            overflow="fold" if column == "name" else "ellipsis",
            min_width=name_width if column == "name" else None,
            max_width=domain_width if column == "domain" else None,
        )
    for ranked in preview.top:
        account = ranked.account
        table.add_row(account.id, account.name, ranked.domain or "", _ranked(ranked), ranked.tier)
    console.print(table)
    capped = next((ranked for ranked in preview.top if _off_scale(ranked)), None)
    if capped is not None:
        end = capped.score
        console.print(
            f"  Scores stop at {end}: the number in brackets is the account's points before "
            f"that end, which order the accounts tied at {end} (the CRM shows {end})",
            soft_wrap=True,
            highlight=False,
        )


def _whole(points: float) -> int:
    """Points as a whole number, a half rounded away from the scale's middle (as `f"{:.0f}"`
    would not: 100.5 would show as 100, past the end yet seeming not)."""
    return math.floor(points + 0.5) if points >= SCORE_MAX / 2 else math.ceil(points - 0.5)


def _past_end(points: float) -> bool:
    """Whether points, whole, pass an end of the 0-100 scale (half a point past it rounds back
    onto it: the score shows nothing of it)."""
    return not 0 <= _whole(points) <= SCORE_MAX


def _off_scale(ranked: RankedAccount) -> bool:
    """Whether the account's points passed an end of the scale, so that its score alone orders
    nothing among those there; a disqualified account's score is forced down, not past an end."""
    return ranked.points is not None and not ranked.disqualified and _past_end(ranked.points)


def _ranked(ranked: RankedAccount) -> str:
    """A top account's score, with its points before the scale's end when they passed it."""
    if ranked.points is None or not _off_scale(ranked):
        return f"{ranked.score}"
    return f"{ranked.score} ({_whole(ranked.points)})"


def _widths(width: int, top: Sequence[RankedAccount]) -> tuple[int, int | None]:
    """The least the name column keeps, and the most the domain column may take (None: every
    domain fits whole), in a table ``width`` wide: the name keeps its longest word whole where
    the room allows (up to `_WORD_WIDTH`), so names wrap at their spaces ("MeridianVault
    Energy", not "MeridianVaul" then "t Energy"), and domains are cut short first."""
    if not top:
        return _NAME_WIDTH, None
    ids = max(len("account"), *(len(r.account.id) for r in top))
    tiers = max(len("tier"), *(len(r.tier) for r in top))
    scores = max(len("score"), *(len(_ranked(r)) for r in top))
    domains = max(len("domain"), *(len(r.domain or "") for r in top))
    edges = 3 * 5 + 1  # a bar and a space either side of each of five columns
    room = width - edges - ids - tiers - scores
    words = max((len(word) for r in top for word in (r.account.name or "").split()), default=0)
    name = max(_NAME_WIDTH, min(words, _WORD_WIDTH, room - len("domain")))
    left = room - name
    return name, None if domains <= left else max(left, len("domain"))


def print_run_report(console: Console, report: RunReport) -> None:
    """What a run did: pulled, linked, scored, tiers, written, failed, calls, time per stage."""
    if report.full_reason:
        console.print(f"Re-pulled every record: {report.full_reason}", soft_wrap=True)
    pulled = sum(p["records"] for p in report.pulled.values())
    # said, so a cycle with nothing new does not seem to have pulled thousands
    again = _read_again(report.pulled)
    held = f" ({again:,} read again, unchanged since the last pull)" if again else ""
    link = report.link
    orphans = sum(link.orphans.values())
    matched = f"{link.people:,} people" if link.people else "none"
    console.print(
        f"Pulled {pulled:,} records{held} from {len(report.pulled)} streams; people: "
        f"{link.linked:,} linked to an account, {link.review:,} for review, {orphans:,} "
        f"orphans (matching ran on {matched} this run)"
    )
    console.print(
        f"Scored {report.scored:,} accounts and {report.orphans_scored:,} "
        f"{_UNLINKED_WHO if report.orphans_scored else _UNLINKED} with "
        f"{report.model_version} ({report.model_kind}); "
        f"tiers {joined(report.tiers)}; {report.tier_up} moved up, {report.tier_down} down"
    )
    if report.model_reason:
        console.print(f"  {report.model_reason}", soft_wrap=True, highlight=False)
    if report.dry_run:
        _print_plan(console, report)
    else:
        orphan_writes = (
            f"; {report.orphans_written:,} {_UNLINKED}" if report.orphans_written else ""
        )
        console.print(
            f"Written {sum(report.written.values()):,} ({joined(report.written)}{orphan_writes}), "
            f"{report.unchanged:,} already up to date, {report.held_back:,} held back, "
            f"{len(report.failed):,} failed"
        )
    for failure in report.failed[:10]:
        console.print(f"  failed {failure['object']} {failure['id']}: {failure['code']} "
                      f"{failure['message']}")  # fmt: skip
    calls = _calls(report.api_calls, report.budget_left)  # as `handoff logs RUN` says it
    console.print(f"API calls: {calls}. Time: {_times(report.stages)}")
    console.print(f"Outcome: {report.outcome} (exit {EXIT_CODES[report.outcome]})")


def _print_plan(console: Console, report: RunReport) -> None:
    """A dry run's planned writes: counts per field and a sample (none when nothing would be
    written)."""
    if not report.planned:
        console.print("Dry run: no record would be written (and none was)")
        return
    console.print(f"Dry run: {report.planned:,} records would be written (none was)")
    if not report.sample:
        return
    console.print(f"  per field: {joined(report.planned_fields)}")
    table = Table(title="Sample of planned writes")
    for column in ("object", "id", "why", "score", "tier"):
        table.add_column(column)
    for row in report.sample:
        table.add_row(*(str(row[column]) for column in ("object", "id", "why", "score", "tier")))
    console.print(table)


def print_schema_report(console: Console, report: SchemaReport) -> None:
    """What set-up did to each field we own (and the rest it keeps: HubSpot's property group,
    Salesforce's Reason Code rule), then one line of totals; only the line when all of it was
    in place already."""
    if report.changed or report.of("conflict"):
        table = Table(title="What Handoff owns in the CRM", show_lines=False)
        widest = max(len(change.name) for change in report.changes)
        table.add_column("object")
        table.add_column("name", no_wrap=True, min_width=widest)  # whole: looked up by it
        table.add_column("action")
        table.add_column("detail")
        for change in report.changes:
            table.add_row(change.object, change.name, change.action, _detail(change))
        console.print(table)
    console.print(f"Set-up: {schema_summary(report)}")


def _detail(change: SchemaChange) -> str:
    """What set-up says of a field, else who fills it in when a run does not (an admin finding
    it empty after a sync should know why)."""
    if change.detail:
        return change.detail
    owned = _OWNED_BY_NAME.get(change.name)
    return _WRITERS[owned.writer] if owned is not None else ""


_OWNED_BY_NAME = {name: f for f in OWNED_FIELDS for name in (f.salesforce, f.hubspot)}
_WRITERS = {
    "run": "",
    "reps": "set by reps; read back by each sync",
    "planned": "planned: routing will set it",
}


def schema_summary(report: SchemaReport) -> str:
    """`created 12, repaired 1, unchanged 11`, or that nothing needed changing."""
    if not report.changed and not report.of("conflict"):
        return f"nothing to change, all {len(report.changes)} in place"
    counts = {action: len(report.of(action)) for action in _ACTIONS}
    return ", ".join(f"{action} {count}" for action, count in counts.items() if count)


_ACTIONS = ("created", "repaired", "unchanged", "conflict")
