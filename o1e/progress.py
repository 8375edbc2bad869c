"""Progress: a redrawn bar on a terminal, a log line every few seconds elsewhere (a Ray job's log, a file,
a CI console), and one bar in the driver for work done by many Ray actors.

Workers call ``counter.add.remote(n)`` (fire and forget); the driver polls the counter while it waits
for results (``counter_bar``), so the terminal shows one clean bar instead of interleaved per-actor logs.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from tqdm import tqdm

LOG_INTERVAL_S = 30.0


class LogLines(tqdm):
    """tqdm that writes a whole line (rows done, rate, time left) at most every ``LOG_INTERVAL_S`` seconds,
    and one when it closes, instead of redrawing a bar with carriage returns."""

    def display(self, msg=None, pos=None):
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
        yield lambda: progress.update(ray.get(counter.get.remote()) - progress.n)


def console():
    """A rich console for o1e's tables: the terminal's, or, where output is not a terminal (a log, a Ray job,
    CI), one 160 columns wide (tables are not cut to 80) that draws borders and rules in ASCII (a third of
    the bytes of box-drawing characters)."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console(highlight=False)

    class LogConsole(Console):
        @property
        def encoding(self) -> str:  # rich draws ASCII boxes and rules for an ASCII-only output
            return "ascii"

    return LogConsole(highlight=False, width=160)

