"""Topologies and schedules as data: the built-ins load, bad files are refused naming the field."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from faultlens.lab.faults import FaultType, ScheduleError, builtin_schedule, load_schedule
from faultlens.lab.loadgen import LoadConfig, rate_at
from faultlens.lab.topology import BUILTIN_TOPOLOGIES, TopologyError, builtin_topologies, load_topology

INVALID = sorted((Path(__file__).parent / "invalid").glob("*.yaml"))


def test_every_builtin_topology_has_6_to_12_services_and_a_reachable_graph() -> None:
    topos = builtin_topologies()
    assert set(topos) == set(BUILTIN_TOPOLOGIES)
    for name, topo in topos.items():
        assert 6 <= len(topo.services) <= 12, name
        assert any(s.db for s in topo.services), name
        reached, todo = {topo.entry}, [topo.entry]
        while todo:
            for call in topo.service(todo.pop()).calls:
                if call.to not in reached:
                    reached.add(call.to)
                    todo.append(call.to)
        assert reached == {s.name for s in topo.services}, name


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_an_invalid_topology_file_is_refused_naming_the_field(path: Path) -> None:
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    assert str(info.value) == f"{path}: {expected}"


def test_a_schedule_file_is_checked_against_the_topology(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("faults:\n  - {at: 2m, duration: 30s, service: orders, type: db_lock}\n")
    (fault,) = load_schedule(path, ["gateway", "orders"], with_db=["orders"])
    assert (fault.at, fault.duration, fault.type) == (120.0, 30.0, FaultType.DB_LOCK)
    with pytest.raises(ScheduleError, match=r"faults\.0\.service: 'orders' has no database to lock"):
        load_schedule(path, ["gateway", "orders"], with_db=[])
    path.write_text("faults:\n  - {at: 1m, duration: 30s, service: orders, type: melt}\n")
    with pytest.raises(ScheduleError, match=r"faults\.0\.type"):
        load_schedule(path, ["orders"], with_db=[])
    path.write_text(
        "faults:\n  - {at: 1m, duration: 30s, service: orders, type: latency, params: {delay: 5}}\n"
    )
    with pytest.raises(ScheduleError, match=r"faults\.0\.params: \['delay'\] unknown for latency"):
        load_schedule(path, ["orders"], with_db=[])


def test_the_builtin_schedule_rotates_types_over_services_that_can_take_them() -> None:
    topo = load_topology("shop")
    names = [s.name for s in topo.services]
    with_db = [s.name for s in topo.services if s.db]
    callers = [n for n in names if topo.callers(n)]
    schedule = builtin_schedule("builtin:2m", names, with_db=with_db, with_callers=callers, duration_s=3600)
    assert {f.type for f in schedule} == set(FaultType)
    assert all(b.at - a.at == 120 for a, b in itertools.pairwise(schedule))
    assert all(f.duration == 60 for f in schedule)
    for f in schedule:
        if f.type is FaultType.DB_LOCK:
            assert f.service in with_db
        if f.type in (FaultType.DEPENDENCY_DOWN, FaultType.WRONG_RETURN):
            assert f.service != topo.entry
    assert len({f.service for f in schedule}) >= 5


def test_the_load_follows_a_daily_curve_between_night_and_peak() -> None:
    cfg = LoadConfig(target="http://x", mix={"a": 1}, rate=10, day_s=600, night_share=0.2, phase=0.0)
    assert rate_at(cfg, 0) == pytest.approx(2.0)  # midnight
    assert rate_at(cfg, 300) == pytest.approx(10.0)  # midday
    assert rate_at(cfg, 600) == pytest.approx(2.0)  # the next midnight
