"""Progress: a redrawn bar on a terminal, a log line every few seconds elsewhere (a Ray job's log, a file,
a CI console), and one bar in the driver for work done by many Ray actors.

Workers call ``counter.add.remote(n)`` (fire and forget); the driver polls the counter while it waits
for results, so the terminal shows one clean bar instead of interleaved per-actor logs.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

LOG_INTERVAL_S = 5.0


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
    return LogLines(*args, **kwargs)


class Counter:
    def __init__(self) -> None:
        self.value = 0

    def add(self, n: int) -> None:
        self.value += n

    def get(self) -> int:
        return self.value


def wait_with_progress(ray, pending: dict, counter, total: int, desc: str, unit: str, show: bool = True) -> dict:
    """Wait for every ref in ``pending`` (ref -> key), showing ``counter``'s count; returns key -> result."""
    results = {}
    with bar(total=total, desc=desc, unit=unit, disable=not show) as progress:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in done:
                results[pending.pop(ref)] = ray.get(ref)
            progress.update(ray.get(counter.get.remote()) - progress.n)
    return results


def console():
    """A rich console for o1e's tables: the terminal's width, or 160 columns where output is not a terminal
    (a log, a Ray job, CI), so that tables are not cut to 80."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)

