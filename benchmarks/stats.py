"""What every benchmark shares: medians, percentiles, timed runs and Markdown tables."""

import statistics
import time
from typing import Callable, Dict, List, Sequence, Tuple


def median_ms(samples: Sequence[float]) -> float:
    """Median of seconds, in milliseconds."""
    return statistics.median(samples) * 1000


def percentile(samples: List[float], pct: float) -> float:
    """Nearest-rank percentile of seconds, in milliseconds."""
    ordered = sorted(samples)
    index = max(0, min(len(ordered) - 1, int(round(pct / 100 * len(ordered))) - 1))
    return ordered[index] * 1000


def time_runs(fn: Callable[[], object], runs: int) -> List[float]:
    """Wall time of ``runs`` calls, after one warm-up call."""
    fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def time_interleaved(first: Callable[[], object], second: Callable[[], object], runs: int
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


def columns_in_turns(runs: int, order: Sequence[Tuple[str, Callable[[int], float]]]
                     ) -> Dict[str, List[float]]:
    """``runs`` rounds of every column's measure (given the round), the order turned each round,
    so a noisy moment (or whichever goes first after another's disk writes) hits all alike."""
    order = list(order)
    columns: Dict[str, List[float]] = {key: [] for key, _ in order}
    for n in range(runs):
        turn = n % len(order)
        for key, measure in order[turn:] + order[:turn]:
            columns[key].append(measure(n))
    return columns


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a Markdown table."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
