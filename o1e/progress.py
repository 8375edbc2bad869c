"""One progress bar in the driver for work done by many Ray actors.

Workers call ``counter.add.remote(n)`` (fire and forget); the driver polls the counter while it waits
for results, so the terminal shows one clean bar instead of interleaved per-actor logs.
"""

from __future__ import annotations

from tqdm import tqdm


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
    with tqdm(total=total, desc=desc, unit=unit, disable=not show) as bar:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in done:
                results[pending.pop(ref)] = ray.get(ref)
            bar.update(ray.get(counter.get.remote()) - bar.n)
    return results
