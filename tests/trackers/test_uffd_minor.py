"""uffd-minor: exact (precision = recall = 1) for reads and writes on every pattern; one fault
per page touched; nothing left behind however the run ends.

``python -m tests.trackers.test_uffd_minor [MiB]`` measures the cost of one MINOR fault
round trip (kernel -> compiled server -> UFFDIO_CONTINUE -> retry) in each thread placement
(``bench.fault_path``: the same loop and server as ``hotbench micro``'s fault/uffd-minor*),
against a Python server and against a plain shmem refault with no userfaultfd.
"""

import os
import sys
import threading
import time

import numba
import numpy as np
import pytest
import workloads

from bench.arena import Arena
from bench.kernel import libc, uffd, uffd_server
from bench.trackers.uffd_minor import UffdMinorTracker
from tests.trackers import _leftovers
from tests.trackers._lockstep import run

pytestmark = pytest.mark.mechanism("uffd-minor")


@pytest.mark.parametrize("pattern", workloads.names())
def test_exact_on_every_pattern(pattern):
    df = run("uffd-minor", pattern, "shmem", intervals=3, accesses=5_000)
    assert (df["fp"] == 0).all() and (df["fn"] == 0).all(), df[["interval", "tp", "fp", "fn"]]
    assert df["tp"].sum() > 0 and (df["truth_read"] > 0).all() and (df["truth_written"] > 0).all()


@pytest.mark.parametrize("write_ratio", [0.0, 1.0])
def test_reads_only_and_writes_only(write_ratio):
    df = run("uffd-minor", "hotcold", "shmem", intervals=2, accesses=5_000, write_ratio=write_ratio)
    assert (df["fp"] == 0).all() and (df["fn"] == 0).all()


def test_one_fault_per_page_touched():
    """Each touched page faults once (the CONTINUE maps it writable). The server counts a fault
    after its CONTINUE, so a count can land one interval late: compare the totals."""
    df = run("uffd-minor", "zipf", "shmem", intervals=4, accesses=20_000)
    faults = [__import__("json").loads(e)["uffd_faults"] for e in df["extra"]]
    assert abs(sum(faults) - int(df["tp"].sum())) <= 1, (faults, df["tp"].tolist())


def test_multithreaded_is_exact():
    df = run("uffd-minor", "uniform", "shmem", intervals=2, accesses=40_000, threads=3, write_ratio=0.5)
    assert (df["fp"] == 0).all() and (df["fn"] == 0).all()


def test_refuses_anon():
    assert UffdMinorTracker.unavailable("anon").startswith("uffd-minor does not work on anon")


# ---- nothing left behind

def test_normal_stop_leaves_nothing_behind(monkeypatch):
    watch = _leftovers.Watch(monkeypatch, UffdMinorTracker)
    run("uffd-minor", "uniform", "shmem", intervals=2, accesses=2_000)
    assert "ui" in watch.armed["flags"] and watch.armed["uffd_fds"] == watch.before["uffd_fds"] + 1
    _leftovers.assert_restored(watch.before, watch.after)
    assert watch.writable


def test_exception_inside_an_interval_leaves_nothing_behind(monkeypatch):
    watch = _leftovers.Watch(monkeypatch, UffdMinorTracker)
    _leftovers.failing_workloads(monkeypatch, at=1)
    with pytest.raises(RuntimeError, match="workload failed"):
        run("uffd-minor", "uniform", "shmem", intervals=3, accesses=2_000)
    _leftovers.assert_restored(watch.before, watch.after)
    assert watch.writable


def test_sigint_of_hotbench_run_leaves_nothing_behind(tmp_path):
    result = _leftovers.sigint_run(tmp_path, "uffd-minor", "shmem")
    assert result["returncode"] == 130, result["stderr"]
    assert "ui" in result["armed"]["flags"]
    _leftovers.assert_restored(result["before"], result["after"])
    assert result["writable"]


def test_stop_twice_and_after_failed_start():
    with Arena("4M", "shmem") as a:
        t = UffdMinorTracker()
        t.stop()  # never started
        t.start(a)
        t.arm()
        t.stop()
        t.stop()
        assert _leftovers.writable_without_handler(a.addr, a.size)


# ---- per-fault cost (a measurement, not a test: nothing asserted about time)

@numba.njit(nogil=True)
def _touch_pages(view, step):
    acc = 0
    for off in range(0, view.size, step):
        acc += view[off]
    return acc


def _time_touch(view, step=4096):
    t0 = time.perf_counter()
    _touch_pages(view, step)
    return time.perf_counter() - t0


def _python_server(u, base, npages, stop_evt, counters):
    """The same loop as the compiled server, in Python (each fault: read, CONTINUE via ctypes)."""
    import select

    msgs = np.zeros(64, uffd.uffd_msg_dtype)
    poller = select.poll()
    poller.register(u.fd, select.POLLIN)
    while not stop_evt.is_set():
        if not poller.poll(50):
            continue
        for m in u.read_messages(msgs):
            if m["event"] == uffd.UFFD_EVENT_PAGEFAULT:
                u.continue_(int(m["address"]) & ~4095, 4096)
                counters[0] += 1


def measure_fault_cost(size_mb: int = 64, rounds: int = 5) -> dict:
    """µs per page for: a touch of present pages, a plain shmem refault (fault-around on: 16 pages
    per fault), a plain refault per fault (one page per 16-page window), a MINOR fault served by
    the compiled server in each placement (same-cpu, other-cpu on two CPUs, unpinned), and one
    served by a Python thread (unpinned; one fault per page for all of these)."""
    from bench import fault_path

    uffd_server.warmup()
    results = {"present": [], "refault_no_uffd": [], "refault_per_fault": [], "minor_python": []}
    for name in fault_path.PLACEMENTS:
        if name != fault_path.OTHER_CPU or len(os.sched_getaffinity(0)) > 1:
            place = fault_path.placement_cpus(name)
            results[f"minor_numba_{name}"] = fault_path.round_trip("uffd-minor", place, size_mb << 20, rounds)
    with Arena(f"{size_mb}M", "shmem") as a:
        n = a.npages
        _touch_pages(a.view, 4096)  # compile
        for _ in range(rounds):
            results["present"].append(_time_touch(a.view) / n)
            libc.madvise(a.addr, a.size, libc.MADV_DONTNEED)
            results["refault_no_uffd"].append(_time_touch(a.view) / n)
            libc.madvise(a.addr, a.size, libc.MADV_DONTNEED)  # one page per fault-around window:
            results["refault_per_fault"].append(_time_touch(a.view, 16 * 4096) / (n // 16))  # one fault each
        with uffd.Userfaultfd(uffd.UFFD_FEATURE_MINOR_SHMEM) as u:
            u.register(a.addr, a.size, uffd.UFFDIO_REGISTER_MODE_MINOR)
            stop_evt, counters = threading.Event(), [0]
            th = threading.Thread(target=_python_server, args=(u, a.addr, n, stop_evt, counters), daemon=True)
            th.start()
            try:
                for _ in range(rounds):
                    libc.madvise(a.addr, a.size, libc.MADV_DONTNEED)
                    results["minor_python"].append(_time_touch(a.view) / n)
            finally:
                u.unregister(a.addr, a.size)
                stop_evt.set()
                th.join()
    return {k: float(np.median(v)) * (1 if k.startswith("minor_numba") else 1e6) for k, v in results.items()}


def test_fault_cost_is_measurable(capsys):
    costs = measure_fault_cost(size_mb=8, rounds=2)
    with capsys.disabled():
        print("\nuffd-minor µs/page: " + ", ".join(f"{k} {v:.2f}" for k, v in costs.items()))
    assert all(v > 0 for v in costs.values())


if __name__ == "__main__":
    mb = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    costs = measure_fault_cost(mb)
    print(f"{os.uname().release}, shmem arena {mb} MiB, median of 5 rounds, µs per 4 KiB page:")
    for k, v in costs.items():
        print(f"  {k:18} {v:7.2f}")
