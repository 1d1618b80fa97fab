"""benchmarks/fleet.py on a small fleet: it runs on the daemon's own arithmetic, the spread first
refresh flattens the echo of a rush, throttling is counted, and the PNG is a valid image.
"""

import struct
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import fleet  # noqa: E402


@pytest.fixture(scope="module")
def day() -> "fleet.Day":
    return fleet.Day(workspaces=400, hours=4, seed=3).draw()


def test_every_slot_is_asked_for_at_the_rush_and_at_noon_only_when_restarting_cold(day):
    cold_day = fleet.dataclasses.replace(day, keep_tokens=False)
    cold = fleet.simulate(cold_day, spread_first=True)
    slots = sum(day.slots)
    assert sum(cold.per_second[:61]) == slots
    noon = int(fleet.NOON)
    # a daemon holding nothing after the fleet-wide restart: every slot asks in its minute
    assert sum(cold.per_second[noon:noon + 61]) >= slots
    assert cold.requests == sum(cold.per_second)
    # kept tokens: the noon minute sees only the refreshes that were due anyway
    kept = fleet.simulate(day, spread_first=True)
    assert sum(kept.per_second[:61]) == slots
    steady = sum(kept.per_second[noon - 600:noon]) / 10
    assert sum(kept.per_second[noon:noon + 61]) <= 2 * steady + 5
    assert kept.requests < cold.requests


def test_kept_tokens_keep_the_noon_restart_within_twice_the_mean(day):
    f = fleet.figures(fleet.simulate(day, spread_first=True), day)
    assert f["peak"] / f["mean"] <= 2.0
    cold_day = fleet.dataclasses.replace(day, keep_tokens=False)
    cold = fleet.figures(fleet.simulate(cold_day, spread_first=True), cold_day)
    assert cold["peak"] / cold["mean"] >= 5.0


def test_spreading_the_first_refresh_flattens_the_echo_of_the_rush(day):
    # restarting cold, noon is a second rush: both rushes' echoes are measured
    day = fleet.dataclasses.replace(day, keep_tokens=False)
    ours = fleet.figures(fleet.simulate(day, spread_first=True), day)
    plain = fleet.figures(fleet.simulate(day, spread_first=False), day)
    assert ours["peak_outside_noon"] / ours["mean"] <= 1.6
    assert plain["peak_outside_noon"] / plain["mean"] >= 2.0


def test_refreshes_follow_the_schedule_arithmetic():
    # no random restarts: every request after the rush is a refresh. The plain rule asks
    # nothing before the earliest half-life mark (30 minutes, less the 7-minute lead); the
    # spread rule refreshes within that first half hour already.
    quiet = fleet.Day(workspaces=300, hours=2, seed=4, restart_share=0.0).draw()
    plain = fleet.simulate(quiet, spread_first=False)
    assert sum(plain.per_second[61:23 * 60]) == 0 and sum(plain.per_second[23 * 60:]) > 0
    ours = fleet.simulate(quiet, spread_first=True)
    assert sum(ours.per_second[120:23 * 60]) > sum(quiet.slots) / 2


def test_requests_over_the_budget_are_counted_and_retried_when_throttled():
    small = dict(workspaces=300, hours=4, seed=5, bucket=50.0, per_second=2.0)
    counted = fleet.simulate(fleet.Day(**small).draw(), spread_first=True)
    assert counted.throttled > 0
    retried = fleet.simulate(fleet.Day(feedback=True, **small).draw(), spread_first=True)
    # a 429 makes the slot ask again (after Retry-After), so more requests reach the IdP
    assert retried.throttled > 0 and retried.requests > counted.requests


def test_main_prints_the_table_and_writes_a_png(tmp_path, capsys):
    png = tmp_path / "fleet.png"
    assert fleet.main(["--workspaces", "200", "--hours", "4", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "| credhelper (kept tokens, first refresh spread) |" in out and "peak/mean" in out
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat_len = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41:41 + idat_len])
    assert len(raw) == height * (1 + 3 * width)
    assert b"\x1f\x77\xb4" in raw  # the blue curve is drawn
