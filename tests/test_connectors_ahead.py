"""`connectors.ahead.read_ahead`: each page read beside the caller's work on the page before it,
never beside a fetch, in order; a read's error raised in its place; closing stops the fetches.

The Salesforce connector reads its Bulk pages through it; that its records are those read row by
row is `test_connectors_batches`'s.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from connectors.ahead import read_ahead


class _Pages:
    """Pages 0..count-1, fetched in turn; what was under way at each fetch is noted."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.fetched: list[int] = []
        self.reading = threading.Event()  # a read runs
        self.holding = threading.Event()  # the caller works on a page read
        self.fetched_beside_work = 0

    def __iter__(self) -> Iterator[int]:
        for page in range(self.count):
            if self.reading.is_set() or self.holding.is_set():
                self.fetched_beside_work += 1
            self.fetched.append(page)
            yield page


def test_each_page_is_read_beside_the_callers_work_on_the_one_before_and_never_beside_a_fetch() -> (
    None
):
    pages = _Pages(5)
    started = [threading.Event() for _ in range(pages.count)]
    threads: list[str] = []
    seen: list[int] = []

    def read(page: int) -> int:
        pages.reading.set()
        started[page].set()
        threads.append(threading.current_thread().name)
        threading.Event().wait(0.02)  # long enough for a fetch beside it to be seen
        pages.reading.clear()
        return page * 10

    for result in read_ahead(iter(pages), read):
        pages.holding.set()
        page = result // 10
        if page + 1 < pages.count:  # the next page is being read (or was) while we hold this one
            assert started[page + 1].wait(timeout=2)
        threading.Event().wait(0.02)  # long enough for a fetch beside it to be seen
        seen.append(result)
        pages.holding.clear()
    assert seen == [0, 10, 20, 30, 40]
    assert pages.fetched == [0, 1, 2, 3, 4]
    assert pages.fetched_beside_work == 0
    assert all(name.startswith("page-reader") for name in threads)


def test_a_read_starts_only_once_the_read_before_it_has_ended() -> None:
    order: list[str] = []

    def read(page: int) -> int:
        order.append(f"start {page}")
        threading.Event().wait(0.01)
        order.append(f"end {page}")
        return page

    assert list(read_ahead(iter(range(3)), read)) == [0, 1, 2]
    assert order == ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]


def test_a_reads_error_is_raised_where_its_result_would_come() -> None:
    def read(page: int) -> int:
        if page == 2:
            raise ValueError("page 2 is not CSV")
        return page

    got: list[int] = []
    with pytest.raises(ValueError, match="page 2 is not CSV"):
        for result in read_ahead(iter(range(5)), read):
            got.append(result)
    assert got == [0, 1]


def test_a_fetchs_error_comes_after_the_page_read_before_it() -> None:
    def pages() -> Iterator[int]:
        yield 0
        yield 1
        raise ConnectionError("the CRM is gone")

    got: list[int] = []
    with pytest.raises(ConnectionError, match="the CRM is gone"):
        for result in read_ahead(pages(), lambda page: page):
            got.append(result)
    assert got == [0, 1]  # page 1 was read before the fetch failed: it is the caller's still


def test_closing_waits_for_the_read_under_way_and_fetches_no_further_page() -> None:
    pages = _Pages(6)
    ended: list[int] = []

    def read(page: int) -> int:
        threading.Event().wait(0.05 if page == 2 else 0)
        ended.append(page)
        return page

    ahead = read_ahead(iter(pages), read)
    assert [next(ahead), next(ahead)] == [0, 1]  # page 2 is being read as 1 is held
    ahead.close()
    assert ended == [0, 1, 2]  # the read under way ended before close returned
    assert pages.fetched == [0, 1, 2]


def test_no_pages_no_reads() -> None:
    assert list(read_ahead(iter(()), lambda page: page)) == []
