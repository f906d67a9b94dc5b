"""tracefs: the text parser on recorded lines (no kernel), and a live private instance that
records this thread's page faults and leaves no instance or mount behind."""

import mmap
import os
from pathlib import Path

import numpy as np
import pytest

from bench import recovery
from bench.kernel import tracefs

# Lines as the 6.18 host printed them: a counter clock (x86-tsc) and the mono clock.
RECORDED = """\
# tracer: nop
#
            python3-20606   [000] d..2. 40189553360620: page_fault_user: address=0x7f4525e9a000 ip=0x7f45413bc27a error_code=0x6
 hotbench-uffd-m-20675   [001] d..2. 40189553369382: sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=hotbench-uffd-m next_pid=20675 next_prio=120
            python3-20606   [000] d..2. 20075.073022: sched_waking: comm=python3 pid=20675 prio=120 target_cpu=000
"""


def test_parse_recorded_lines():
    events = tracefs.parse(RECORDED)
    assert [e.name for e in events] == ["sched_waking", "page_fault_user", "sched_switch"]  # time order
    fault = events[1]
    assert (fault.pid, fault.cpu, fault.ns) == (20606, 0, 40189553360620 * 10**9)
    assert fault.fields["address"] == "0x7f4525e9a000"
    switch = events[2]
    assert switch.pid == 20675 and switch.cpu == 1 and switch.fields["next_pid"] == "20675"
    assert events[0].ns == 20075_073022_000 and events[0].fields["pid"] == "20675"


@pytest.mark.root
def test_live_instance_records_this_threads_faults_and_leaves_nothing():
    why = tracefs.unavailable()
    if why:
        pytest.skip(why)
    # A mapping of our own: np.zeros may take it from malloc's heap (glibc raises its mmap threshold
    # after an earlier test frees a large block), already touched, and then no write faults.
    mapping = mmap.mmap(-1, 256 * 4096)
    buf = np.frombuffer(mapping, np.uint8)
    with tracefs.Session({"exceptions/page_fault_user": f"common_pid == {os.getpid()}"}, clock="x86-tsc") as t:
        instance, mount = t._instance, t._mount
        assert f" {mount} tracefs " in Path("/proc/self/mounts").read_text()
        t.start()
        buf[::4096] = 1
        events = t.stop()
    faults = [e for e in events if e.name == "page_fault_user"]
    lo, hi = buf.ctypes.data, buf.ctypes.data + buf.size
    assert sum(lo <= int(e.fields["address"], 16) < hi for e in faults) >= 1
    assert all(e.pid == os.getpid() for e in faults)
    assert all(b.ns >= a.ns for a, b in zip(faults, faults[1:]))
    assert not instance.exists() and not Path(mount).exists()
    assert f" {mount} " not in Path("/proc/self/mounts").read_text()  # others may mount meanwhile: only ours
    del buf
    mapping.close()


@pytest.mark.root
def test_a_killed_session_is_removed_by_the_next_command(tmp_path):
    """SIGKILL inside a session leaves its instance (events enabled, a ring buffer) and its mount
    in the kernel; the state journal names both and recover() takes them away."""
    import signal
    import subprocess
    import sys

    from bench import journal

    why = tracefs.unavailable()
    if why:
        pytest.skip(why)
    state = tmp_path / "state"
    code = ("import os, signal\nfrom bench.kernel import tracefs\n"
            "with tracefs.Session({'exceptions/page_fault_user': ''}) as t:\n"
            "    print(t._mount, t._instance, os.getpid(), flush=True)\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], text=True,
                          capture_output=True, timeout=60, env={**os.environ, "HOTBENCH_STATE_DIR": str(state)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    mount, instance, pid = proc.stdout.split()
    assert Path(instance).is_dir() and f" {mount} tracefs " in Path("/proc/self/mounts").read_text()
    lines = recovery.recover(journal.Journal(state))
    assert lines == [f"hotbench: removed tracefs instance {instance}: exists -> removed (left by pid {pid}, "
                     f"which is gone)",
                     f"hotbench: unmounted tracefs from {mount}: mounted -> not mounted (left by pid {pid}, "
                     f"which is gone)"]
    assert f" {mount} " not in Path("/proc/self/mounts").read_text() and not Path(mount).exists()


def test_parse_function_stat():
    text = ("  Function                               Hit    Time            Avg             s^2\n"
            "  --------                               ---    ----            ---             ---\n"
            "  rmap_walk                             8192    12345.67 us     1.507 us        0.120 us\n"
            "  page_idle_clear_pte_refs_one          8192    999.001 us      0.121 us        0.001 us\n")
    lines = tracefs.parse_function_stat(text)
    assert [(x.function, x.hits) for x in lines] == [("rmap_walk", 8192), ("page_idle_clear_pte_refs_one", 8192)]
    assert lines[0].time_ns == pytest.approx(12_345_670)


@pytest.mark.root
def test_private_mount_is_journaled_while_it_lasts(tmp_path):
    from bench import journal

    why = tracefs.unavailable()
    if why:
        pytest.skip(why)
    state = journal.Journal(tmp_path / "state")
    with tracefs.private_mount(state) as where:
        (entry,) = state.entries()
        assert entry.kind == journal.MOUNT and entry["target"] == where and entry["fstype"] == "tracefs"
        assert Path(where, "events").is_dir()
    assert state.entries() == [] and not Path(where).exists()
    assert f" {where} " not in Path("/proc/self/mounts").read_text()
