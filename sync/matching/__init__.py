"""Lead-to-account matching (D3): staged rules with confidences, orphans explained."""

from sync.matching.match import match_people
from sync.matching.reach import Changes
from sync.matching.result import COLUMNS, REASONS, STATUSES, Link, Matching, Status
from sync.matching.rules import RULES, Rule

__all__ = [
    "COLUMNS",
    "REASONS",
    "RULES",
    "STATUSES",
    "Changes",
    "Link",
    "Matching",
    "Rule",
    "Status",
    "match_people",
]
