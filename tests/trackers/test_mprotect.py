"""mprotect: exact reads and writes (the read after a write excepted), a correct sigaction ABI,
faults not ours handed to the previous handler, and the vm.max_map_count overflow survived.

Touches come from numba ``nogil`` loops of this file (not the workloads), so a page list and
a read/write flag per touch are the ground truth. Nothing here lowers the system-wide
vm.max_map_count (other processes on the host would hit it too): the overflow tests use up
this process's own map count instead, which is what the kernel compares with the limit.
"""

import contextlib
import ctypes
import os
import resource
import shutil
import subprocess
import sys
import textwrap
import threading

import numba
import numpy as np
import pytest

from bench.arena import Arena, backing_unavailable
from bench.errors import HotbenchError
from bench.kernel import libc, nbsys, signals
from bench.trackers import TrackerUnavailable
from bench.trackers.mprotect import TRACKERS, MprotectTracker

PAGE = 4096
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@numba.njit(nogil=True)
def touch(view, pages, writes):
    """Touch byte 0 of each page in order: a store when writes[i], else a load."""
    acc = 0
    for i in range(pages.size):
        offset = pages[i] * PAGE
        if writes[i]:
            view[offset] = 1
        else:
            acc += view[offset]
    return acc


def _split(rng, npages, sizes):
    """Disjoint random page sets of the given sizes."""
    chosen = rng.choice(npages, sum(sizes), replace=False)
    out, at = [], 0
    for n in sizes:
        out.append(np.sort(chosen[at:at + n]))
        at += n
    return out


def _bitmap(npages, *sets):
    out = np.zeros(npages, bool)
    for s in sets:
        out[s] = True
    return out


def _maps():
    """/proc/self/maps as (start, end, perms)."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            out.append((lo, hi, fields[1]))
    return out


def _vmas_over(addr, end):
    return [(lo, hi, perms) for lo, hi, perms in _maps() if lo < end and hi > addr]


def _map_count():
    """What the kernel compares with vm.max_map_count (the gate VMA [vsyscall] is not counted)."""
    return sum(1 for lo, hi, perms in _maps() if lo < (1 << 47))


@pytest.fixture
def started():
    """(arena, tracker) factory; everything stopped and unmapped afterwards."""
    made = []

    def make(size="16M", backing="anon"):
        reason = backing_unavailable(backing)
        if reason:
            pytest.skip(reason)
        arena = Arena(size, backing)
        tracker = MprotectTracker()
        made.append((arena, tracker))
        tracker.start(arena)
        return arena, tracker

    yield make
    for arena, tracker in made:
        tracker.stop()
        arena.close()


# -- the sigaction ABI ------------------------------------------------------------------------

def test_layouts_match_the_installed_headers(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to read <signal.h> / <sys/ucontext.h> with")
    src = tmp_path / "layout.c"
    src.write_text(textwrap.dedent("""\
        #define _GNU_SOURCE
        #include <signal.h>
        #include <stddef.h>
        #include <stdio.h>
        #include <ucontext.h>
        int main(void) {
            printf("%zu %zu %zu %zu %zu\\n", sizeof(struct sigaction), offsetof(struct sigaction, sa_mask),
                   offsetof(struct sigaction, sa_flags), offsetof(struct sigaction, sa_restorer), sizeof(sigset_t));
            printf("%zu %zu\\n", offsetof(siginfo_t, si_code), offsetof(siginfo_t, si_addr));
            printf("%zu %zu %zu\\n", offsetof(ucontext_t, uc_mcontext.gregs[REG_ERR]),
                   offsetof(ucontext_t, uc_mcontext.gregs[REG_TRAPNO]), offsetof(ucontext_t, uc_mcontext.gregs[REG_CR2]));
            printf("%d %d %d %d\\n", REG_ERR, REG_TRAPNO, REG_CR2, NGREG);
            printf("%d %d %d %d %d %d\\n", SA_SIGINFO, SA_ONSTACK, SA_RESTART, SA_NODEFER, SA_RESETHAND, SIGSEGV);
            printf("%d %d\\n", SEGV_MAPERR, SEGV_ACCERR);
            return 0;
        }
        """))
    subprocess.run([cc, "-o", str(tmp_path / "layout"), str(src)], check=True)
    got = subprocess.run([str(tmp_path / "layout")], check=True, capture_output=True, text=True).stdout.split("\n")
    s = signals
    sa = s.struct_sigaction
    assert got[0].split() == [str(v) for v in (ctypes.sizeof(sa), sa.sa_mask.offset, sa.sa_flags.offset,
                                                sa.sa_restorer.offset, ctypes.sizeof(s.sigset_t))]
    assert got[1].split() == [str(s.SIGINFO_SI_CODE), str(s.SIGINFO_SI_ADDR)] == ["8", "16"]
    assert got[2].split() == [str(s.UCONTEXT_REG_ERR), str(s.UCONTEXT_REG_TRAPNO), str(s.UCONTEXT_REG_CR2)]
    assert got[3].split() == [str(v) for v in (s.REG_ERR, s.REG_TRAPNO, s.REG_CR2, s.NGREG)]
    assert [int(v) & 0xFFFFFFFF for v in got[4].split()] == [
        s.SA_SIGINFO, s.SA_ONSTACK, s.SA_RESTART, s.SA_NODEFER, s.SA_RESETHAND, s.SIGSEGV]
    assert got[5].split() == [str(s.SEGV_MAPERR), str(s.SEGV_ACCERR)]


def test_sigaction_refuses_what_the_kernel_refuses():
    new = signals.struct_sigaction(sa_handler=signals.SIG_IGN)
    for signum in (9, 19, 0, 65):  # SIGKILL, SIGSTOP, and out of range
        with pytest.raises(OSError) as e:
            signals.sigaction(signum, new)
        assert e.value.errno == 22 and f"sigaction({signum})" in str(e.value)


_record = np.zeros(16, np.int64)  # [0] calls, then per call: si_code, si_addr, REG_ERR, REG_TRAPNO, REG_CR2
_recorder = None


def recorder():
    """A SIGSEGV handler of the test's own: records what the kernel passed, opens the page RW."""
    global _recorder
    if _recorder is None:
        rec_addr = _record.ctypes.data
        si_code, si_addr = signals.SIGINFO_SI_CODE // 4, signals.SIGINFO_SI_ADDR // 8
        err, trapno, cr2 = (signals.UCONTEXT_REG_ERR // 8, signals.UCONTEXT_REG_TRAPNO // 8,
                            signals.UCONTEXT_REG_CR2 // 8)

        @numba.cfunc(numba.types.void(numba.types.int32, numba.types.voidptr, numba.types.voidptr))
        def handler(signum, info, ctx):
            rec = numba.carray(nbsys.voidptr(rec_addr), 16, np.int64)
            ints = numba.carray(info, 8, np.int32)
            longs = numba.carray(info, 4, np.int64)
            gregs = numba.carray(ctx, 32, np.int64)
            rec[0] += 1
            rec[1], rec[2] = ints[si_code], longs[si_addr]
            rec[3], rec[4], rec[5] = gregs[err], gregs[trapno], gregs[cr2]
            nbsys.mprotect(nbsys.voidptr(longs[si_addr] & ~4095), 4096, 3)

        _recorder = handler
    return _recorder


@contextlib.contextmanager
def installed(handler_address, flags=signals.SA_SIGINFO | signals.SA_NODEFER):
    before = signals.sigaction(signals.SIGSEGV, signals.struct_sigaction(sa_handler=handler_address, sa_flags=flags))
    try:
        yield before
    finally:
        signals.sigaction(signals.SIGSEGV, before)


@contextlib.contextmanager
def scratch(npages=4, prot=libc.PROT_NONE):
    addr = libc.mmap(npages * PAGE, prot, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS)
    try:
        yield addr, np.ctypeslib.as_array((ctypes.c_uint8 * (npages * PAGE)).from_address(addr))
    finally:
        libc.munmap(addr, npages * PAGE)


def test_fault_offsets_live():
    """si_code, si_addr and gregs[REG_ERR/TRAPNO/CR2] read where signals.py says, on real faults."""
    with installed(recorder().address), scratch(2) as (addr, view):
        _record[:] = 0
        touch(view[123:], np.array([0], np.int64), np.array([0], np.uint8))  # read page 0 at +123
        read = _record[:6].copy()
        touch(view[456:], np.array([1], np.int64), np.array([1], np.uint8))  # write page 1 at +456
        write = _record[:6].copy()
    assert read[0] == 1 and write[0] == 2
    for rec, at in ((read, addr + 123), (write, addr + PAGE + 456)):
        assert rec[1] == signals.SEGV_ACCERR
        assert rec[2] == at and rec[5] == at  # si_addr is the byte, as CR2
        assert rec[4] == signals.X86_TRAP_PF
        assert rec[3] & signals.X86_PF_USER
    assert not read[3] & signals.X86_PF_WRITE
    assert write[3] & signals.X86_PF_WRITE


# -- exactness ---------------------------------------------------------------------------------

@pytest.mark.parametrize("backing", ["anon", "shmem", "thp"])
def test_exact_on_random_pages_over_several_intervals(started, backing):
    arena, tracker = started("16M", backing)
    rng = np.random.default_rng(42)
    for interval in range(3):
        only_read, only_written, read_then_written, written_then_read = _split(
            rng, arena.npages, [300 + interval, 200, 100, 50])
        first = np.concatenate([only_read, only_written, read_then_written, written_then_read])
        first_w = np.concatenate([np.zeros(only_read.size), np.ones(only_written.size),
                                  np.zeros(read_then_written.size), np.ones(written_then_read.size)])
        second = np.concatenate([read_then_written, written_then_read])
        second_w = np.concatenate([np.ones(read_then_written.size), np.zeros(written_then_read.size)])
        p1, p2 = rng.permutation(first.size), rng.permutation(second.size)

        tracker.arm()
        touch(arena.view, first[p1].astype(np.int64), first_w[p1].astype(np.uint8))
        touch(arena.view, second[p2].astype(np.int64), second_w[p2].astype(np.uint8))
        obs = tracker.collect()

        n = arena.npages
        assert obs.status == "ok"
        np.testing.assert_array_equal(obs.accessed, _bitmap(n, first))
        np.testing.assert_array_equal(obs.written, _bitmap(n, only_written, read_then_written, written_then_read))
        # a read after a write is invisible: the page is already open
        np.testing.assert_array_equal(obs.read, _bitmap(n, only_read, read_then_written))
        assert obs.extra["faults"] == first.size + read_then_written.size
        assert obs.extra["write_faults"] == only_written.size + read_then_written.size + written_then_read.size
        assert obs.extra["overflow"] == 0


def test_touching_with_the_gil_held_works(started):
    """The handler is compiled code: a fault taken by numpy (GIL held) needs no Python to resolve."""
    arena, tracker = started("8M")
    pages = np.random.default_rng(3).choice(arena.npages, 200, replace=False)
    tracker.arm()
    total = int(arena.view[pages * PAGE].sum())  # numpy reads
    arena.view[pages[:50] * PAGE] = 7  # numpy writes
    obs = tracker.collect()
    assert total == 0
    np.testing.assert_array_equal(obs.accessed, _bitmap(arena.npages, pages))
    np.testing.assert_array_equal(obs.written, _bitmap(arena.npages, pages[:50]))
    np.testing.assert_array_equal(obs.read, _bitmap(arena.npages, pages))


def test_two_threads_touching_at_once(started):
    arena, tracker = started("64M")
    rng = np.random.default_rng(11)
    for interval in range(2):
        jobs = []
        for _ in range(2):  # overlapping sets: the same page may fault in both threads at once
            pages = rng.choice(arena.npages // 2, 4000, replace=False).astype(np.int64)
            writes = (rng.random(pages.size) < 0.4).astype(np.uint8)
            jobs.append((pages, writes))
        barrier = threading.Barrier(2)
        errors = []

        def work(pages, writes):
            try:
                barrier.wait()
                touch(arena.view, pages, writes)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        tracker.arm()
        threads = [threading.Thread(target=work, args=job) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        obs = tracker.collect()
        assert not errors and obs.status == "ok"
        n = arena.npages
        all_pages = np.concatenate([p for p, _ in jobs])
        written = np.concatenate([p[w == 1] for p, w in jobs])
        read = np.concatenate([p[w == 0] for p, w in jobs])
        np.testing.assert_array_equal(obs.accessed, _bitmap(n, all_pages))
        np.testing.assert_array_equal(obs.written, _bitmap(n, written))
        never_written = _bitmap(n, read) & ~_bitmap(n, written)
        assert (obs.read[never_written]).all()  # pages only read are all seen read
        assert not (obs.read & ~_bitmap(n, read)).any()  # and nothing unread is


# -- cleanup -----------------------------------------------------------------------------------

def _assert_open_in_one_vma(arena):
    vmas = _vmas_over(arena.addr, arena.end)
    assert len(vmas) == 1 and vmas[0][2].startswith("rw"), [(hex(lo), hex(hi), p) for lo, hi, p in vmas]


def test_stop_restores_the_previous_action_and_rw():
    before = signals.sigaction(signals.SIGSEGV)
    with Arena("8M") as arena:
        tracker = MprotectTracker()
        tracker.start(arena)
        during = signals.sigaction(signals.SIGSEGV)
        assert during.handler != before.handler
        assert during.sa_flags & signals.SA_SIGINFO and during.sa_flags & signals.SA_NODEFER
        tracker.arm()
        touch(arena.view, np.arange(0, 200, 3, dtype=np.int64), np.ones(67, np.uint8))
        tracker.stop()  # without collect
        after = signals.sigaction(signals.SIGSEGV)
        assert after.same_as(before) and after.handler == before.handler
        _assert_open_in_one_vma(arena)
        touch(arena.view, np.arange(arena.npages, dtype=np.int64), np.ones(arena.npages, np.uint8))
        tracker.stop()
        assert signals.sigaction(signals.SIGSEGV).same_as(before)


def test_stop_is_idempotent_and_safe_after_a_failed_start():
    before = signals.sigaction(signals.SIGSEGV)
    MprotectTracker().stop()  # never started
    with Arena("4M") as arena:
        first, second = MprotectTracker(), MprotectTracker()
        first.start(arena)
        try:
            with pytest.raises(HotbenchError, match="one handler per process"):
                second.start(arena)
            second.stop()  # must not undo the first
            second.stop()
            first.arm()
            touch(arena.view, np.array([1, 3], np.int64), np.array([1, 0], np.uint8))
            obs = first.collect()
            assert np.flatnonzero(obs.accessed).tolist() == [1, 3]
        finally:
            first.stop()
            first.stop()
    assert signals.sigaction(signals.SIGSEGV).same_as(before)
    with pytest.raises(HotbenchError, match="before start"):
        first.arm()


def test_an_exception_between_arm_and_collect_leaves_no_prot_none():
    with Arena("8M") as arena:
        tracker = MprotectTracker()
        try:
            tracker.start(arena)
            tracker.arm()
            touch(arena.view, np.arange(0, arena.npages, 7, dtype=np.int64),
                  np.zeros(-(-arena.npages // 7), np.uint8))
            assert len(_vmas_over(arena.addr, arena.end)) > 100  # split by the read faults
            with pytest.raises(RuntimeError):
                raise RuntimeError("workload failed mid-interval")
        finally:
            tracker.stop()
        _assert_open_in_one_vma(arena)


# -- vm.max_map_count ---------------------------------------------------------------------------

@contextlib.contextmanager
def map_count_ballast(headroom):
    """Use up this process's map count until only *headroom* VMAs are left below vm.max_map_count."""
    limit = int(open("/proc/sys/vm/max_map_count").read())
    pairs = (limit - _map_count() - headroom) // 2
    if pairs <= 0:
        pytest.skip(f"vm.max_map_count {limit} leaves no room for a ballast")
    if pairs > 200_000:
        pytest.skip(f"vm.max_map_count {limit} is too large to fill quickly")
    size = (2 * pairs + 1) * PAGE
    addr = libc.mmap(size, libc.PROT_NONE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS | libc.MAP_NORESERVE)
    try:
        _split_every_other(addr, pairs)  # PROT_NONE, no memory: each opened page costs 2 VMAs
        yield limit
    finally:
        libc.munmap(addr, size)


@numba.njit(nogil=True)
def _split_every_other(addr, pairs):
    for i in range(pairs):
        if nbsys.mprotect(nbsys.voidptr(addr + (2 * i + 1) * PAGE), PAGE, 1) != 0:
            return i
    return pairs


def test_map_count_overflow_is_survived_and_reported(started):
    arena, tracker = started("16M")
    rng = np.random.default_rng(5)
    pages = rng.choice(np.arange(0, arena.npages, 2), 1500, replace=False).astype(np.int64)  # never adjacent
    writes = (rng.random(pages.size) < 0.5).astype(np.uint8)
    tracker.arm()
    touch(arena.view, pages[:2], writes[:2])  # compiled and warm before the ballast
    tracker.collect()
    with map_count_ballast(headroom=200) as limit:
        tracker.arm()
        touch(arena.view, pages, writes)  # must return: no fault loop, no crash
        obs = tracker.collect()
        _assert_open_in_one_vma(arena)
    assert obs.status.startswith("map-count-limit: saw ")
    assert f"vm.max_map_count ({limit})" in obs.status and obs.status.endswith("later accesses invisible")
    seen = np.flatnonzero(obs.accessed)
    assert obs.extra["overflow"] == 1 and obs.extra["pages_seen_before_overflow"] == seen.size
    assert 20 <= seen.size <= 190  # about headroom / 2
    assert set(seen) <= set(pages)  # all true positives: the first pages touched, in order
    np.testing.assert_array_equal(seen, np.sort(pages[:seen.size]))
    np.testing.assert_array_equal(np.flatnonzero(obs.written), np.sort(pages[:seen.size][writes[:seen.size] == 1]))

    tracker.arm()  # the limit gone, the next interval is exact again
    touch(arena.view, pages, writes)
    obs = tracker.collect()
    assert obs.status == "ok" and obs.extra["overflow"] == 0
    np.testing.assert_array_equal(obs.accessed, _bitmap(arena.npages, pages))


@pytest.mark.slow
def test_scattered_pages_until_the_real_limit(started):
    limit = int(open("/proc/sys/vm/max_map_count").read())
    if limit > 70_000:
        pytest.skip(f"vm.max_map_count {limit}: the arena would be too large")
    arena, tracker = started("512M")
    pages = np.arange(0, arena.npages, 2, dtype=np.int64)
    tracker.arm()
    in_use = _map_count()
    touch(arena.view, pages, np.ones(pages.size, np.uint8))
    obs = tracker.collect()
    n = obs.extra.get("pages_seen_before_overflow")
    print(f"mprotect: {n} scattered pages seen before vm.max_map_count {limit} ({in_use} VMAs in use)")
    assert obs.status.startswith("map-count-limit") and abs(n - (limit - in_use) // 2) <= 16
    np.testing.assert_array_equal(np.flatnonzero(obs.accessed), pages[:n])


# -- faults that are not ours ------------------------------------------------------------------

_CRASH = """\
import faulthandler, os, signal, sys, ctypes
if sys.argv[1] == "faulthandler":
    faulthandler.enable()
from bench.arena import Arena
from bench.trackers.mprotect import MprotectTracker
arena = Arena("4M")
tracker = MprotectTracker()
tracker.start(arena)
tracker.arm()
print("armed", flush=True)
if sys.argv[2] == "null":
    ctypes.string_at(0)
else:
    os.kill(os.getpid(), signal.SIGSEGV)
print("survived", flush=True)
"""


@pytest.mark.parametrize("fault", ["null", "kill"])
@pytest.mark.parametrize("previous", ["faulthandler", "default"])
def test_a_fault_outside_the_arena_reaches_the_previous_handler(previous, fault):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PYTHONFAULTHANDLER", None)
    proc = subprocess.run([sys.executable, "-c", _CRASH, previous, fault], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)))  # no core files
    assert proc.stdout == "armed\n", proc.stderr
    assert proc.returncode == -11, proc.stderr
    if previous == "faulthandler":
        assert "Fatal Python error: Segmentation fault" in proc.stderr
        assert "<string>" in proc.stderr  # the traceback points into the script
    else:
        assert "Fatal Python error" not in proc.stderr


def test_a_foreign_fault_goes_to_a_recovering_previous_handler(started):
    """In process: the previous handler fixes its own fault and the program carries on."""
    rec = recorder()
    with installed(rec.address), scratch(1) as (addr, view):
        arena, tracker = started("8M")
        tracker.arm()
        touch(arena.view, np.array([2, 4], np.int64), np.array([1, 0], np.uint8))
        _record[:] = 0
        touch(view, np.array([0], np.int64), np.array([1], np.uint8))  # not the arena's
        assert _record[0] == 1 and _record[2] == addr  # the previous handler got it
        assert signals.sigaction(signals.SIGSEGV).handler == rec.address  # handed back
        touch(arena.view, np.array([6], np.int64), np.array([1], np.uint8))  # arena re-opened: no fault
        obs = tracker.collect()
        assert obs.status.startswith("handler-displaced") and f"{addr:#x}" in obs.status
        assert np.flatnonzero(obs.accessed).tolist() == [2, 4]  # seen before the hand-over

        tracker.arm()  # re-installs the handler
        assert signals.sigaction(signals.SIGSEGV).handler != rec.address
        touch(arena.view, np.array([1, 9], np.int64), np.array([0, 1], np.uint8))
        obs = tracker.collect()
        assert obs.status == "ok" and np.flatnonzero(obs.accessed).tolist() == [1, 9]
        tracker.stop()
        assert signals.sigaction(signals.SIGSEGV).handler == rec.address


# -- identity ----------------------------------------------------------------------------------

def test_identity_and_unavailable_off_x86_64(monkeypatch):
    assert TRACKERS == [MprotectTracker]
    t = MprotectTracker
    assert (t.name, t.mechanism, t.granularity, t.sees) == ("mprotect", "mprotect", "page", "reads+writes")
    assert "hugetlb" not in t.backings and {"anon", "shmem", "thp"} <= set(t.backings)
    real = os.uname()
    fake = os.uname_result((real.sysname, real.nodename, real.release, real.version, "aarch64"))
    monkeypatch.setattr(signals.os, "uname", lambda: fake)
    reason = MprotectTracker.unavailable("anon")
    assert reason and "x86_64" in reason and "aarch64" in reason
    with Arena("2M") as arena, pytest.raises(TrackerUnavailable, match="x86_64"):
        MprotectTracker().start(arena)
