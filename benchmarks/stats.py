"""What every benchmark shares: medians, percentiles, timed runs and Markdown tables."""

import statistics
import time
from typing import Callable, List, Sequence


def median_ms(samples: Sequence[float]) -> float:
    """Median of seconds, in milliseconds."""
    return statistics.median(samples) * 1000


def percentile(samples: List[float], pct: float) -> float:
    """Nearest-rank percentile of seconds, in milliseconds."""
    ordered = sorted(samples)
    index = max(0, min(len(ordered) - 1, int(round(pct / 100 * len(ordered))) - 1))
    return ordered[index] * 1000


def time_runs(fn: Callable[[], None], runs: int) -> List[float]:
    """Wall time of ``runs`` calls, after one warm-up call."""
    fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def time_interleaved(first: Callable[[], None], second: Callable[[], None], runs: int
                     ) -> "tuple[List[float], List[float]]":
    """Wall times of ``first`` and ``second``, run in turns, so both see the same machine load."""
    first()
    second()
    a: List[float] = []
    b: List[float] = []
    for _ in range(runs):
        for fn, out in ((first, a), (second, b)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return a, b


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a Markdown table."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
