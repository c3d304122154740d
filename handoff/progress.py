"""Progress of a sync run's stages on stderr: bars with counts on a terminal, plain lines in a log.

    with StageProgress(Console(stderr=True)) as progress:
        run_sync(config, connector, store, now, progress=progress)

A stage shows up only once it has run for over a second, so quick stages leave no trace. On a
terminal each such stage gets a rich bar ("mirror ━━━━━━ 3/7 0:00:04"); elsewhere (a pipe, a
scheduler's log, tests) a plain line "mirror: 3 of 7" at most every few seconds and at the end.
rich is already the CLI's table library; its `Progress` redraws in place and stays out of
non-terminal output.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["StageProgress"]

SHOW_AFTER_SECONDS = 1.0
LINE_EVERY_SECONDS = 5.0


class StageProgress:
    """A `sync.run` progress callback, ``(stage, done, total)``, drawing on ``console``."""

    def __init__(
        self,
        console: Console,
        *,
        clock: Callable[[], float] = time.monotonic,
        show_after: float = SHOW_AFTER_SECONDS,
        line_every: float = LINE_EVERY_SECONDS,
    ) -> None:
        self._console, self._clock = console, clock
        self._show_after, self._line_every = show_after, line_every
        self._started: dict[str, float] = {}
        self._last_line: dict[str, float] = {}
        self._tasks: dict[str, TaskID] = {}
        self._bars: Progress | None = None

    def __enter__(self) -> StageProgress:
        if self._console.is_terminal:
            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self._console,
                transient=False,
            )
            self._bars.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bars is not None:
            self._bars.stop()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        """Note that ``stage`` has done ``done`` of ``total`` (None: unknown)."""
        now = self._clock()
        started = self._started.setdefault(stage, now)
        if now - started < self._show_after:
            return
        if self._bars is not None:
            self._bar(stage, done, total)
        else:
            self._line(stage, done, total, now)

    def _bar(self, stage: str, done: int, total: int | None) -> None:
        assert self._bars is not None
        if stage not in self._tasks:
            self._tasks[stage] = self._bars.add_task(stage, total=total)
        self._bars.update(self._tasks[stage], completed=done, total=total)

    def _line(self, stage: str, done: int, total: int | None, now: float) -> None:
        finished = total is not None and done >= total
        last = self._last_line.get(stage)
        if not finished and last is not None and now - last < self._line_every:
            return
        self._last_line[stage] = now
        of = f" of {total:,}" if total else ""
        self._console.print(f"{stage}: {done:,}{of}", highlight=False)
