"""Kernel events per tracker phase (bench.attribution) through the runner, on the running kernel."""

import json

import pytest

from bench import attribution, runner
from bench.kernel import mm_events
from bench.kernel import perf_event as pe
from bench.trackers import Tracker


def test_columns_round_trip():
    assert attribution.column("collect", "rmap_walk") == "kev.collect.rmap_walk"
    assert attribution.split_column("kev.collect.rmap_walk") == ("collect", "rmap_walk")
    assert attribution.split_column("collect_ns") is None and attribution.split_column("kev.arm") is None


def test_every_tracker_declares_events_of_the_catalogue_with_unique_names():
    from bench import trackers

    for name, cls in trackers.registry().items():
        events = attribution.events_for(cls)
        names = [e.name for e in events]
        assert len(names) == len(set(names)), name
        assert set(attribution.COMMON) <= set(events), name
        for event in cls.kernel_events:
            assert isinstance(event, (pe.Tracepoint, pe.Kprobe)) and event.unit, (name, event)


def test_a_session_that_cannot_count_counts_nothing_and_says_why(monkeypatch):
    monkeypatch.setattr(pe, "probe", lambda: "cannot mount or read tracefs: Operation not permitted")
    session = attribution.Session()
    assert session.for_cell(Tracker) is attribution.NONE
    why = "cannot mount or read tracefs: Operation not permitted"
    assert session.describe() == {"kernel_events": {"enabled": False, "reason": why}}


def _session():
    session = attribution.Session()
    if session.reason:
        pytest.skip(f"cannot count kernel events here: {session.reason}")
    return session


def _cell(tracker, backing="anon", intervals=3):
    return runner.Cell(tracker, "uniform", backing, 16 << 20, intervals, 0, 1, accesses=20_000, write_ratio=0.5)


@pytest.mark.mechanism("mprotect")
def test_mprotect_faults_and_signals_are_counted_in_the_workload_phase():
    session = _session()
    rows = runner.run_cell(_cell("mprotect"), events=session)
    assert [r["status"] for r in rows] == ["ok"] * 3
    for row in rows:
        handled = json.loads(row["extra"])["faults"]
        assert row["kev.workload.sigsegv"] == handled  # one SIGSEGV per protection fault the handler took
        assert row["kev.workload.fault_user"] >= handled
        assert row["kev.arm.sigsegv"] == row["kev.collect.sigsegv"] == 0
        assert row["kev.arm.tlb_local_mm"] + row["kev.arm.tlb_ipi_sent"] >= 1  # PROT_NONE over present PTEs
    record = session.describe()["kernel_events"]["trackers"]["mprotect"]
    assert "sigsegv" in record["counted"]
    for name, why in record["unavailable"].items():  # e.g. kprobes on a kernel without the kprobe PMU
        assert why and f"kev.arm.{name}" not in rows[0]


@pytest.mark.mechanism("uffd-wp")
def test_uffd_wp_write_faults_are_counted_and_collect_takes_almost_none():
    session = _session()
    rows = runner.run_cell(_cell("uffd-wp"), events=session)
    for row in rows[1:]:  # after the first interval every page is write-protected
        assert row["kev.workload.fault_user"] >= row["reported"] > 0  # one WP fault per page first written
        # collect never touches the arena; the collector's own fresh buffers may fault a page or two
        assert row["kev.collect.fault_user"] <= 8 < row["reported"]


class _Wants(Tracker):
    name = "wants-missing"
    kernel_events = (pe.Tracepoint("tlb", "hotbench_no_such_event", "missing", "never there"),)


def test_an_event_the_kernel_lacks_has_no_column_and_a_reason():
    session = _session()
    with session.for_cell(_Wants) as counters:
        with counters.phase("arm"):
            pass
        columns = counters.take()
    assert "kev.arm.missing" not in columns and "kev.arm.fault_user" in columns
    why = session.describe()["kernel_events"]["trackers"]["wants-missing"]["unavailable"]["missing"]
    assert "hotbench_no_such_event" in why and "No such file" in why
