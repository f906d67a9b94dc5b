"""fault_path: placements, the per-fault split of traced events (synthetic events, no kernel),
and live round trips and breakdowns of MINOR faults on this kernel (numbers printed, never
judged: the machine may be loaded)."""

import os

import pytest

from bench import fault_path as F
from bench.kernel import tracefs

T, S = 100, 200  # toucher and server thread ids
ARENA = range(0x1000, 0x9000)


def ev(ns, name, by=T, **fields):
    """An event recorded on thread *by* (sched_waking's pid field is the thread woken)."""
    return tracefs.Event(by, 0, ns, name, {k: str(v) for k, v in fields.items()})


def fault(ns, page):
    return ev(ns, "page_fault_user", address=hex(0x1000 + page * 4096))


def one_round_trip(t0, page, *, server_asleep=True):
    """The events of one served fault starting at t0: 1 ns, 2, 3, 4, 5 later (server wake optional)."""
    out = [fault(t0, page)]
    if server_asleep:
        out += [ev(t0 + 1, "sched_waking", pid=S), ev(t0 + 3, "sched_switch", next_pid=S)]
    out += [ev(t0 + 6, "sys_enter", by=S), ev(t0 + 10, "sched_waking", by=S, pid=T),
            ev(t0 + 15, "sched_switch", next_pid=T)]
    return out


def test_split_adds_up_to_the_gap_between_faults():
    events = one_round_trip(0, 0) + one_round_trip(21, 1) + [fault(50, 2)]
    split = F.split_faults(events, T, S, ARENA)
    assert split == {"entry->wake": [1, 1], "server wake": [2, 2], "server read": [3, 3], "resolve": [4, 4],
                     "toucher wake": [5, 5], "back to user": [6, 14]}


def test_a_server_already_awake_costs_no_wake_and_foreign_faults_are_ignored():
    foreign = ev(30, "page_fault_user", address=hex(0x100000))  # outside the arena: not the loop's
    events = one_round_trip(0, 0, server_asleep=False) + [foreign, fault(40, 1)]
    split = F.split_faults(events, T, S, ARENA)
    assert split["entry->wake"] == [0] and split["server wake"] == [0] and split["server read"] == [6]
    assert split["back to user"] == [25]


def test_a_fault_the_server_never_saw_is_not_split():
    assert F.split_faults([fault(0, 0), fault(5, 1)], T, S, ARENA)["resolve"] == []


def test_placements():
    assert F.placement_cpus("same-cpu", {2, 3}) == F.Placement("same-cpu", {2}, {2})
    assert F.placement_cpus("other-cpu", {2, 3}) == F.Placement("other-cpu", {2}, {3})
    assert F.placement_cpus("unpinned", {2, 3}).server is None
    with pytest.raises(ValueError, match="two CPUs"):
        F.placement_cpus("other-cpu", {1})
    with pytest.raises(ValueError, match="unknown placement"):
        F.placement_cpus("elsewhere", {1})
    assert F.resolve("auto", 1).name == "same-cpu" and F.resolve("auto", 4).name == "unpinned"


def test_pin_and_unpin_restore_the_affinity():
    before = os.sched_getaffinity(0)
    with F.pinned(F.placement_cpus("same-cpu")):
        assert len(os.sched_getaffinity(0)) == 1
    assert os.sched_getaffinity(0) == before


@pytest.mark.mechanism("uffd-minor")
@pytest.mark.parametrize("placement", ["same-cpu", "unpinned"])
def test_live_minor_round_trip_and_breakdown(placement, capsys):
    if tracefs.unavailable():
        pytest.skip(tracefs.unavailable())
    before = os.sched_getaffinity(0)
    place = F.placement_cpus(placement)
    trips = F.round_trip("uffd-minor", place, size=1 << 20, rounds=2)
    split = F.breakdown("uffd-minor", place, size=1 << 20)
    assert os.sched_getaffinity(0) == before
    assert len(trips) == 2 and all(t > 0 for t in trips)
    assert split["faults split"] >= 200  # 256 pages, the last one has no next fault to close it
    assert sum(split[name] for name in F.SEGMENTS) > 0
    with capsys.disabled():
        print(f"\n{placement}: round trip {min(trips):.1f} µs; traced " +
              ", ".join(f"{k} {v:.2f}" for k, v in split.items()))
