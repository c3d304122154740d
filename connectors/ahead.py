"""Pages read one ahead: each page read (parsed, converted) in a thread of its own while the
caller works on the page before it, as the mirror stores a page's rows while the next is read.

The next page is fetched only once the page before it is read, and by the caller's thread, so
an HTTP exchange never runs beside our own work: a pull's time less its exchanges is still the
work it did, and the connector's session is used by one thread. A read may keep state from page
to page (a cursor): each starts once the one before it has ended. The reads overlap the caller
where they leave the interpreter lock, as polars does while it works on a column.

    for items in read_ahead(answers, read):  # answers: an iterator of HTTP answers
        store(items)                          # beside the read of the next answer
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["read_ahead"]

P = TypeVar("P")
R = TypeVar("R")


def read_ahead(pages: Iterable[P], read: Callable[[P], R]) -> Iterator[R]:
    """``read`` of each page in turn, each page read while the caller works on the one before.
    A read's error is raised where its result would have come; a fetch's, after the page read
    before it is given (as without the reading ahead). Closing the iterator waits for the read
    under way (its result is dropped) and fetches no further page."""
    fetched = iter(pages)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="page-reader") as pool:
        ready: list[R] = []  # the page before, read and not yet given
        while True:
            try:
                page = next(fetched)  # the fetch: nothing else of ours runs now
            except StopIteration:
                break
            except BaseException:
                yield from ready  # read before the fetch failed: the caller's still
                raise
            reading: Future[R] = pool.submit(read, page)
            if ready:
                yield ready.pop()  # the caller works on it while `page` is read
            ready.append(reading.result())
        yield from ready
