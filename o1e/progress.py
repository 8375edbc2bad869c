"""Progress: a redrawn bar on a terminal, a log line every few seconds elsewhere (a Ray job's log, a file,
a CI console), and one bar in the driver for work done by many Ray actors.

Workers call ``counter.add.remote(n)`` (fire and forget); the driver polls the counter while it waits
for results (``counter_bar``), so the terminal shows one clean bar instead of interleaved per-actor logs.
"""

from __future__ import annotations

import enum
import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from tqdm import tqdm

LOG_INTERVAL_S = 30.0


class Show(enum.Flag):
    """What a stage draws on the terminal. Run on its own (``show=True``) it shows ``ALL``: its progress (bars,
    a line on what it wrote) and its result tables. Inside a pipeline it shows ``PROGRESS`` only: the
    pipeline's summary shows every stage's results once, at the end."""

    NOTHING = 0
    PROGRESS = enum.auto()
    TABLES = enum.auto()
    ALL = PROGRESS | TABLES

    @classmethod
    def of(cls, show: "bool | Show") -> "Show":
        """``True`` means ``ALL``, ``False`` ``NOTHING``."""
        return show if isinstance(show, cls) else (cls.ALL if show else cls.NOTHING)

    @property
    def progress(self) -> bool:
        return bool(self & Show.PROGRESS)

    @property
    def tables(self) -> bool:
        return bool(self & Show.TABLES)


class LogLines(tqdm):
    """tqdm that writes a whole line (rows done, rate, time left) instead of redrawing a bar with carriage
    returns: at most every ``LOG_INTERVAL_S`` seconds and only once the count has moved since its last line
    (no opening 0% line, no idle redraws by tqdm's monitor), and one when it closes, unless its last line
    already said the same count."""

    logged_n: int | None = None

    def display(self, msg=None, pos=None):
        if msg == "":  # tqdm clearing a bar that does not stay: nothing to clear in a log
            return True
        closing = self.disable  # tqdm's close() disables the bar before its last display
        last = self.logged_n if self.logged_n is not None or closing else self.initial
        if msg is None and self.n == last:
            return True
        self.logged_n = self.n
        self.fp.write((msg if msg is not None else self.__str__()).strip() + "\n")
        self.fp.flush()
        return True


def bar(*args, **kwargs) -> tqdm:
    """A progress bar (``tqdm``'s arguments) suited to where stderr goes."""
    stream = kwargs.get("file") or sys.stderr
    if hasattr(stream, "isatty") and stream.isatty():
        return tqdm(*args, **kwargs)
    kwargs.setdefault("mininterval", LOG_INTERVAL_S)
    kwargs.setdefault("ascii", True)
    return LogLines(*args, **kwargs)


class Counter:
    def __init__(self) -> None:
        self.value = 0

    def add(self, n: int) -> None:
        self.value += n

    def get(self) -> int:
        return self.value


@contextmanager
def counter_bar(ray, counter, total: int, desc: str, unit: str, show: bool = True) -> Iterator[Callable[[], None]]:
    """A bar of ``counter``'s count; yields what redraws it (the ``poll`` of ``o1e.ray_utils.as_finished``)."""
    with bar(total=total, desc=desc, unit=unit, disable=not show) as progress:
        def poll() -> None:
            progress.update(ray.get(counter.get.remote()) - progress.n)

        yield poll
        poll()  # the bar ends at the final count, not at the last one polled while waiting


def console():
    """A rich console for o1e's tables: the terminal's, or, where output is not a terminal (a log, a Ray job,
    CI), one 160 columns wide (tables are not cut to 80) that draws borders in ASCII (a third of the bytes of
    box-drawing characters) and a rule as its title between two short dashes."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console(highlight=False)

    class LogConsole(Console):
        @property
        def encoding(self) -> str:  # rich draws ASCII boxes for an ASCII-only output
            return "ascii"

        def rule(self, title: str = "", **kwargs) -> None:
            self.print(f"--- {title} ---" if title else "---")

    return LogConsole(highlight=False, width=160)

