"""A fleet of workspaces on one app registration: what the identity provider sees over a workday.

Each workspace runs credhelper's own refresh arithmetic (``credhelper.schedule``: ``next_refresh``
and ``backoff``) on a simulated clock; nothing sleeps. The day, by default:

* 10,000 workspaces start between 9:00:00 and 9:01:00 (the rush), each with 1-3 token slots,
  every slot asked for at once (a clone, an npm install) and kept warm all day;
* Entra answers with 60-90 minute tokens (``refresh_in`` half the lifetime);
* 1 % of the workspaces restart once at a random time; all of them restart in the minute after
  noon (a fleet-wide restart). A restarted daemon adopts the tokens it kept in its state
  directory (``credhelper/kept.py``), each with the refresh time planned when it arrived: a slot
  whose token is still usable asks nothing until then (``TokenManager.restore``: at
  ``max(restart, planned)``). The random restarts are daemon restarts on the same machine, so
  they keep tokens too (a new machine would start cold, like the 9:00 rush). A third row
  replays the old daemon, which held nothing after a restart (every slot cold again, its first refresh spread): its row is printed for reference;
* Entra throttles the app: modelled as a token bucket (default 1,000 requests per 20 s, the
  per-app budget Microsoft documents for its directory API; it publishes no number for the token
  endpoint). A throttled request is answered 429 with ``Retry-After: 60`` and retried the way the
  daemon retries (``schedule.backoff`` honouring ``Retry-After``).

The rules run on the same fleet, same random draws: credhelper's rule (a slot's first refresh
spread over its whole first period) and the plain rule (every refresh 2-7 minutes before the
half-life). Rates are requests per second averaged over each minute; a per-second peak is also
reported. Prints a Markdown table and writes a PNG of both curves.

    python benchmarks/fleet.py [--workspaces N] [--hours H] [--png PATH] [--seed S]
"""

import argparse
import dataclasses
import heapq
import random
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from credhelper import schedule  # noqa: E402

LIFETIME = (3600.0, 5400.0)   # Entra's access tokens: 60-90 minutes
RETRY_AFTER = 60.0            # what Entra sends with a 429 on client_credentials
NOON = 3 * 3600.0             # seconds after 9:00


@dataclass
class Day:
    """What happens, drawn once and replayed for each rule."""

    workspaces: int = 10_000
    hours: float = 8.0
    rush: float = 60.0                 # all workspaces start within this many seconds of 9:00
    restart_share: float = 0.01        # that share restarts once, at a random time
    noon_spread: float = 60.0          # the fleet-wide restart at noon takes this long
    bucket: float = 1000.0             # throttle: burst size ...
    per_second: float = 50.0           # ... and refill rate (1,000 per 20 s)
    # False: a request over the budget is counted and answered (what the refresh rule alone
    # asks for). True: it gets a 429 and the slot retries as the daemon would (what follows).
    feedback: bool = False
    keep_tokens: bool = True           # a restart adopts the kept tokens (False: starts cold)
    seed: int = 9
    starts: List[float] = field(default_factory=list)
    slots: List[int] = field(default_factory=list)
    restarts: List[List[float]] = field(default_factory=list)

    def draw(self) -> "Day":
        """Fix who starts when, with how many slots, and who restarts when."""
        rng = random.Random(self.seed)
        end = self.hours * 3600
        self.starts = [rng.uniform(0, self.rush) for _ in range(self.workspaces)]
        self.slots = [rng.randint(1, 3) for _ in range(self.workspaces)]
        self.restarts = [[] for _ in range(self.workspaces)]
        for w in rng.sample(range(self.workspaces), int(self.workspaces * self.restart_share)):
            self.restarts[w].append(rng.uniform(self.rush, end))
        if end > NOON:
            for w in range(self.workspaces):
                self.restarts[w].append(NOON + rng.uniform(0, self.noon_spread))
        return self


@dataclass
class Result:
    """Requests per second of simulated time, and the throttled ones among them."""

    per_second: List[int]
    throttled: int
    requests: int


def simulate(day: Day, spread_first: bool) -> Result:
    """Replay ``day`` with credhelper's rule (``spread_first``) or the plain half-life rule."""
    rng = random.Random(day.seed + 1)
    end = day.hours * 3600
    per_second = [0] * (int(end) + 1)
    # event: (time, seq, kind, workspace, slot, generation); kind 0 = ask the IdP, 1 = restart
    events: List[Tuple[float, int, int, int, int, int]] = []
    generation = [0] * day.workspaces
    expires: Dict[Tuple[int, int], float] = {}
    planned: Dict[Tuple[int, int], float] = {}  # the refresh planned when the held token came
    failures: Dict[Tuple[int, int], int] = {}
    seq = 0

    def push(at: float, kind: int, w: int, s: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (at, seq, kind, w, s, generation[w]))

    for w, start in enumerate(day.starts):
        for s in range(day.slots[w]):
            push(start, 0, w, s)
        for at in day.restarts[w]:
            push(at, 1, w, -1)
    tokens, last = day.bucket, 0.0
    throttled = requests = 0
    while events:
        at, _, kind, w, s, gen = heapq.heappop(events)
        if at >= end:
            break
        if gen != generation[w]:
            continue                    # planned by a daemon that has since restarted
        if kind == 1:                   # the daemon restarts
            generation[w] += 1
            for slot in range(day.slots[w]):
                key = (w, slot)
                failures.pop(key, None)
                held = expires.get(key)
                if day.keep_tokens and held is not None and schedule.usable(_Held(held), at):
                    push(max(at, planned[key]), 0, w, slot)   # kept: its own refresh time
                    continue
                expires.pop(key, None)      # nothing kept: cold, asked at once
                planned.pop(key, None)
                push(at, 0, w, slot)
            continue
        requests += 1
        per_second[int(at)] += 1
        tokens = min(day.bucket, tokens + (at - last) * day.per_second)
        last = at
        key = (w, s)
        if tokens >= 1:
            tokens -= 1
        elif day.feedback:              # 429, Retry-After: 60; the daemon backs off
            throttled += 1
            failures[key] = failures.get(key, 0) + 1
            held = expires.get(key)
            cover = held - at if held is not None else None
            push(at + schedule.backoff(failures[key], rng.random(), RETRY_AFTER, cover), 0, w, s)
            continue
        else:
            throttled += 1              # counted, and served anyway: see Day.feedback
        lifetime = rng.uniform(*LIFETIME)
        first = key not in expires
        expires[key] = at + lifetime
        failures.pop(key, None)
        when = planned[key] = schedule.next_refresh(at, at + lifetime, at + lifetime / 2,
                                                    rng.random(), first and spread_first)
        push(when, 0, w, s)
    return Result(per_second, throttled, requests)


@dataclass(frozen=True)
class _Held:
    """A held token as ``schedule.usable`` sees it: its expiry."""

    expires_on: float


def per_minute(per_second: Sequence[int]) -> List[float]:
    """Requests per second, averaged over each whole minute."""
    return [sum(per_second[i:i + 60]) / 60 for i in range(0, len(per_second) - 59, 60)]


def figures(result: Result, day: Day, skip: int = 60) -> Dict[str, float]:
    """Mean and peaks after the first ``skip`` seconds, overall and outside the noon restart."""
    after = result.per_second[skip:]
    mean = sum(after) / len(after)
    minutes = per_minute(result.per_second)[skip // 60:]
    first, last = int(NOON // 60) - skip // 60, int((NOON + day.noon_spread) // 60) - skip // 60
    quiet = [m for i, m in enumerate(minutes) if not first <= i <= last + 1]
    return {"mean": mean, "peak": max(minutes), "peak_1s": float(max(after)),
            "peak_outside_noon": max(quiet) if quiet else 0.0,
            "throttled": float(result.throttled), "requests": float(result.requests)}


# -- a PNG without dependencies ----------------------------------------------------------------

_DIGITS = ["111101101101111", "010110010010111", "111001111100111", "111001111001111",
           "101101111001001", "111100111001111", "111100111101111", "111001001001001",
           "111101111101111", "111101111001111"]
WHITE, GREY, BLUE, BLACK, RED = ((255, 255, 255), (170, 170, 170), (31, 119, 180), (0, 0, 0),
                                 (214, 39, 40))
ORANGE = (255, 187, 120)


class Canvas:
    """An RGB raster with lines, 3x5 digits and a PNG encoder (zlib + struct)."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(WHITE * (width * height))

    def dot(self, x: int, y: int, colour: Tuple[int, int, int], size: int = 1) -> None:
        """Paint a size x size square with its corner at (x, y), clipped to the canvas."""
        for dx in range(size):
            for dy in range(size):
                px, py = x + dx, y + dy
                if 0 <= px < self.width and 0 <= py < self.height:
                    i = 3 * (py * self.width + px)
                    self.pixels[i:i + 3] = bytes(colour)

    def line(self, x0: int, y0: int, x1: int, y1: int, colour: Tuple[int, int, int],
             size: int = 1) -> None:
        """A straight line, one dot per step along the longer axis."""
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(steps + 1):
            self.dot(round(x0 + (x1 - x0) * i / steps), round(y0 + (y1 - y0) * i / steps),
                     colour, size)

    def number(self, x: int, y: int, value: int, colour: Tuple[int, int, int] = BLACK,
               scale: int = 2) -> None:
        """Draw ``value`` in 3x5 digits with its top-left corner at (x, y)."""
        for n, char in enumerate(str(value)):
            glyph = _DIGITS[int(char)]
            for row in range(5):
                for col in range(3):
                    if glyph[row * 3 + col] == "1":
                        self.dot(x + (n * 4 + col) * scale, y + row * scale, colour, scale)

    def png(self) -> bytes:
        """The image as PNG bytes (8-bit RGB, no filter)."""
        raw = b"".join(b"\0" + bytes(self.pixels[3 * y * self.width:3 * (y + 1) * self.width])
                       for y in range(self.height))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return (struct.pack(">I", len(data)) + kind + data
                    + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def plot(curves: Sequence[Tuple[Sequence[float], Tuple[int, int, int]]], hours: float,
         limit: Optional[float], path: Path, top: Optional[float] = None) -> None:
    """Per-minute rates against the hour of day (9 to 9 + hours); ``limit`` as a red line."""
    width, height, left, bottom, pad = 1000, 420, 50, 30, 10
    canvas = Canvas(width, height)
    plot_w, plot_h = width - left - pad, height - bottom - pad
    top = top or max(max(c) for c, _ in curves) * 1.05 or 1.0
    minutes = len(curves[0][0])

    def xy(i: float, rate: float) -> Tuple[int, int]:
        return (left + round(i / max(minutes - 1, 1) * plot_w),
                pad + plot_h - round(min(rate, top) / top * plot_h))

    step = _nice_step(top / 5)
    value = 0.0
    while value <= top:
        _, y = xy(0, value)
        canvas.line(left, y, width - pad, y, (235, 235, 235))
        canvas.number(4, y - 5, int(value))
        value += step
    for hour in range(int(hours) + 1):
        x, _ = xy(hour * 60, 0)
        canvas.line(x, pad, x, pad + plot_h, (235, 235, 235))
        canvas.number(x - 6, height - bottom + 8, 9 + hour)
    canvas.line(left, pad + plot_h, width - pad, pad + plot_h, BLACK)
    canvas.line(left, pad, left, pad + plot_h, BLACK)
    if limit is not None:
        y = xy(0, limit)[1]
        for x in range(left, width - pad, 8):
            canvas.line(x, y, x + 3, y, RED)
    for values, colour in curves:
        points = [xy(i, v) for i, v in enumerate(values)]
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            canvas.line(x0, y0, x1, y1, colour, 2)
    path.write_bytes(canvas.png())


def _nice_step(raw: float) -> float:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000):
        if step >= raw:
            return float(step)
    return 10000.0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run both rules on one day, print the table, write the PNG."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspaces", type=int, default=10_000)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--noon-spread", type=float, default=60.0,
                        help="seconds the fleet-wide restart at noon takes (default 60)")
    parser.add_argument("--throttle", action="store_true",
                        help="answer requests over the budget with 429 and let slots retry")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--png", type=Path, default=ROOT / "benchmarks" / "fleet.png")
    args = parser.parse_args(argv)
    day = Day(workspaces=args.workspaces, hours=args.hours, noon_spread=args.noon_spread,
              feedback=args.throttle, seed=args.seed).draw()
    cold_day = dataclasses.replace(day, keep_tokens=False)
    ours, plain = simulate(day, spread_first=True), simulate(day, spread_first=False)
    cold = simulate(cold_day, spread_first=True)
    rows = [("credhelper (kept tokens, first refresh spread)", figures(ours, day)),
            ("credhelper restarting cold (no kept tokens)", figures(cold, cold_day)),
            ("plain half-life rule, kept tokens (reference)", figures(plain, day))]
    slots = sum(day.slots)
    print(f"\n### Fleet: {day.workspaces:,} workspaces, {slots:,} slots, {day.hours:g} h, "
          f"rush {day.rush:g} s, noon restart over {day.noon_spread:g} s\n")
    print("Rates in requests/s to the identity provider after 9:01, per-minute averages "
          "(peak 1 s: the busiest single second).\n")
    print("| rule | requests | mean/s | peak/s | peak/mean | peak/mean outside the restart | "
          "peak 1 s | throttled |")
    print("|---|---|---|---|---|---|---|---|")
    for name, f in rows:
        print(f"| {name} | {int(f['requests']):,} | {f['mean']:.1f} | {f['peak']:.1f} | "
              f"{f['peak'] / f['mean']:.2f}x | {f['peak_outside_noon'] / f['mean']:.2f}x | "
              f"{int(f['peak_1s'])} | {int(f['throttled']):,} |")
    mean = rows[0][1]["mean"]
    plot([(per_minute(cold.per_second), ORANGE), (per_minute(plain.per_second), GREY),
          (per_minute(ours.per_second), BLUE)],
         day.hours, 2 * mean, args.png, top=max(4 * mean, 1.0))
    print(f"\nPlot: {args.png} (blue: credhelper, orange: credhelper restarting cold, grey: plain rule, red dashes: 2x credhelper's "
          "mean; clipped at 4x the mean; x: hour of day)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
