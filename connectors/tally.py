"""What a pull counts as it goes, and the `Summary` that closes it.

A connector wraps each pull in `Tally.closing`: records (each row of a batch), tombstones, re-read
records and value warnings are counted from the items themselves; what never becomes an item (a
record skipped, an activity no rule typed, the APIs used) the connector notes on the tally as it
reads.

    tally = Tally(stream.name, calls=lambda: policy.budget.calls)
    return tally.closing(self._pull(stream, cursor, tally))
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from connectors.protocol import Item, Record, RecordBatch, Summary, Tombstone

__all__ = ["Tally"]


class Tally:
    """Counters for one pull of one stream."""

    def __init__(self, stream: str, calls: Callable[[], int]) -> None:
        self.stream = stream
        self._calls = calls
        self.skipped: Counter[str] = Counter()
        self.unmatched: Counter[str] = Counter()
        self.sources: dict[str, None] = {}  # ordered set

    def skip(self, reason: str, count: int = 1) -> None:
        """Records left out of the pull (one by default), and why."""
        if count:
            self.skipped[reason] += count

    def unmatched_kind(self, kind: str, count: int = 1) -> None:
        """Activities of a CRM kind (one by default) that no mapping rule typed."""
        if count:
            self.unmatched[kind] += count

    def source(self, name: str) -> None:
        """An API the stream was read from."""
        self.sources.setdefault(name)

    def closing(self, items: Iterable[Item]) -> Iterator[Item]:
        """``items`` as they come, then the pull's `Summary`."""
        warnings: Counter[str] = Counter()
        calls_before = self._calls()
        records = reread = tombstones = 0  # plain counters: a record a row costs a lookup less
        for item in items:
            if isinstance(item, Record):
                records += 1
                if item.reread:
                    reread += 1
                if item.warnings:
                    warnings.update(f"{w.field}: {w.why}" for w in item.warnings)
            elif isinstance(item, RecordBatch):
                records += len(item)
                warned = (w for row in item.warnings.values() for w in row)
                warnings.update(f"{w.field}: {w.why}" for w in warned)
            elif isinstance(item, Tombstone):
                tombstones += 1
            yield item
        counts = Counter(records=records, reread=reread, tombstones=tombstones)
        yield self._summary(counts, warnings, self._calls() - calls_before)

    def _summary(self, counts: Counter[str], warnings: Counter[str], calls: int) -> Summary:
        return Summary(
            self.stream,
            records=counts["records"],
            tombstones=counts["tombstones"],
            reread=counts["reread"],
            warnings=dict(warnings),
            skipped=dict(self.skipped),
            unmatched=dict(self.unmatched),
            sources=tuple(self.sources),
            calls=calls,
        )
