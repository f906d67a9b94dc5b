"""perf_event_open counting on real interfaces: the struct against the installed header, faults and
TLB flushes counted for known work, the ABI's refusals, and (where the kernel has the kprobe PMU:
the built 7.3 guest) kernel functions counted per page."""

import ctypes
import errno
import os
import shutil
import struct
import subprocess
import threading

import numpy as np
import pytest

from bench.kernel import libc, mm_events
from bench.kernel import perf_event as pe
from tests.conftest import skip_unless_in_vm

PAGE = 4096


def test_attr_layout():
    assert ctypes.sizeof(pe.perf_event_attr) == pe.PERF_ATTR_SIZE_VER7 == 128
    offsets = {"config": 8, "sample_period": 16, "read_format": 32, "wakeup_events": 48, "config1": 56,
               "config2": 64, "sample_regs_intr": 96, "sig_data": 120}
    for name, offset in offsets.items():
        assert getattr(pe.perf_event_attr, name).offset == offset, name
    attr = pe.perf_event_attr(disabled=1, inherit=1, exclude_idle=1, precise_ip=3, sigtrap=1)
    flags = int.from_bytes(bytes(attr)[40:48], "little")
    assert flags == (1 << 0) | (1 << 1) | (1 << 7) | (3 << 15) | (1 << 37)


def _from_header(tmp_path, offsets: dict, names: list) -> dict:
    """What the installed <linux/perf_event.h> says: {key: offsetof(struct, field)} for *offsets*
    (key -> (struct, field)) and the value of each macro or enumerator in *names*."""
    body = "\n".join([f' printf("{key} %zu\\n", offsetof(struct {st}, {f}));' for key, (st, f) in offsets.items()]
                     + [f' printf("{n} %llu\\n", (unsigned long long)({n}));' for n in names])
    src = tmp_path / "perf.c"
    src.write_text("#include <stdio.h>\n#include <stddef.h>\n#include <linux/perf_event.h>\n"
                   f"int main(void) {{\n{body}\n return 0; }}\n")
    build = subprocess.run(["cc", "-o", str(tmp_path / "perf"), str(src)], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.skip(f"uapi header not usable: {build.stderr.splitlines()[:1]}")
    return dict(line.split() for line in subprocess.run([str(tmp_path / "perf")], capture_output=True, text=True,
                                                         check=True).stdout.splitlines())


@pytest.mark.skipif(not shutil.which("cc"), reason="no C compiler to read the installed uapi header")
def test_layout_and_numbers_match_installed_header(tmp_path):
    fields = ["config", "read_format", "config1", "config2", "sample_regs_intr", "aux_watermark", "sig_data"]
    names = ["PERF_TYPE_TRACEPOINT", "PERF_FORMAT_GROUP", "PERF_FORMAT_TOTAL_TIME_ENABLED",
             "PERF_FORMAT_TOTAL_TIME_RUNNING", "PERF_EVENT_IOC_ENABLE", "PERF_EVENT_IOC_DISABLE",
             "PERF_EVENT_IOC_RESET", "PERF_EVENT_IOC_SET_FILTER", "PERF_IOC_FLAG_GROUP", "PERF_FLAG_FD_CLOEXEC"]
    seen = _from_header(tmp_path, {f: ("perf_event_attr", f) for f in fields}, names)
    for f in fields:
        assert getattr(pe.perf_event_attr, f).offset == int(seen[f]), f
    for n in names:
        assert getattr(pe, n) == int(seen[n]), n


# ---------------------------------------------------------------- live: needs root and tracefs

def _require_counting():
    if os.geteuid() != 0:
        pytest.skip("needs root (perf_event_open on tracepoints, tracefs)")
    why = pe.probe()
    if why:
        pytest.skip(f"cannot count kernel events here: {why}")


class Region:
    """*npages* of private anonymous memory without THP (a first touch is then one fault per page)."""

    def __init__(self, npages):
        self.size = npages * PAGE
        self.addr = libc.mmap(self.size, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS)
        libc.madvise(self.addr, self.size, libc.MADV_NOHUGEPAGE)

    def touch(self):
        ctypes.memset(self.addr, 1, self.size)  # one C call: no Python allocation between the faults

    def close(self):
        libc.munmap(self.addr, self.size)


def _count(events, work, pid=0, inherit=False, inlined=()):
    """Counts of *events* over *work*. A kprobe in *inlined* may be missing (ENOENT: the build
    inlined the function); such events are left out of the counts, every other must open."""
    from bench.attribution import Counters

    counters = Counters(tuple(events), pid, inherit)
    try:
        missing = {name: why for name, why in counters.unavailable.items()
                   if not (name in inlined and why.endswith("No such file or directory"))}
        assert not missing, missing
        counters.start()
        work()
        return counters.stop()
    finally:
        counters.close()


def test_first_touch_faults_equal_pages():
    _require_counting()
    region = Region(4096)
    try:
        counts = _count([mm_events.FAULT_USER, mm_events.FAULT_KERNEL], region.touch)
    finally:
        region.close()
    # every page faults once (no fault-around on anon memory, no THP in Region); the interpreter's
    # own pages may add a few between start and stop (seen: 2-3 on a loaded machine)
    assert 4096 <= counts["fault_user"] <= 4096 + 16
    assert counts["fault_kernel"] == 0


def test_mprotect_over_many_pages_is_one_local_flush():
    """Write-protecting 64 MiB of present PTEs flushes this mm's range once (a ranged flush, not
    one per page); with the process on one CPU nothing is sent to others."""
    _require_counting()
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    region = Region(16384)
    try:
        region.touch()
        counts = _count(mm_events.COMMON, lambda: libc.mprotect(region.addr, region.size, libc.PROT_READ))
    finally:
        region.close()
        os.sched_setaffinity(0, allowed)
    assert counts["tlb_local_mm"] == 1
    assert counts["fault_user"] == counts["fault_kernel"] == 0
    assert counts["tlb_remote"] == 0


def test_threads_started_inside_are_counted_with_inherit():
    _require_counting()
    region = Region(1024)
    try:
        def in_a_thread():
            t = threading.Thread(target=region.touch)
            t.start()
            t.join()
        counts = _count([mm_events.FAULT_USER], in_a_thread, inherit=True)
    finally:
        region.close()
    assert counts["fault_user"] >= 1024  # the thread's own stack faults come on top


def test_counts_are_per_task():
    """A thread touching memory while the counted thread sleeps adds nothing to its counters."""
    _require_counting()
    region = Region(1024)
    thread = threading.Thread(target=region.touch)
    try:
        counts = _count([mm_events.FAULT_USER], lambda: (thread.start(), thread.join()))
    finally:
        region.close()
    assert counts["fault_user"] < 16  # its own, at most: none of the thread's 1024


def test_bad_filter_is_refused():
    _require_counting()
    bad = pe.Tracepoint("tlb", "tlb_flush", "bad", "", filter="no_such_field == 1")
    with pytest.raises(OSError) as e:
        pe.open_event(bad, 0)
    assert e.value.errno == errno.EINVAL


def test_missing_tracepoint_names_its_file():
    _require_counting()
    with pytest.raises(OSError) as e:
        pe.open_event(pe.Tracepoint("tlb", "no_such_event", "x", ""), 0)
    assert e.value.errno == errno.ENOENT and "events/tlb/no_such_event" in str(e.value)


# ---------------------------------------------------------------- kprobes (the built 7.3 guest)

def _require_kprobes():
    _require_counting()
    if pe.kprobe_pmu_type() is None:
        skip_unless_in_vm(f"no kprobe PMU here ({pe.KPROBE_PMU_TYPE} missing: CONFIG_KPROBE_EVENTS)")


def test_unknown_function_is_refused():
    _require_kprobes()
    with pytest.raises(OSError) as e:
        pe.open_event(pe.Kprobe("hotbench_no_such_function", "x", ""), 0)
    assert e.value.errno in (errno.ENOENT, errno.EINVAL)


def test_mprotect_walks_one_page_table_per_512_pages():
    _require_kprobes()
    region = Region(16384)  # 64 MiB: 32 page tables (more if the mapping is not 2 MiB aligned)
    try:
        region.touch()
        counts = _count([mm_events.CHANGE_PROTECTION, mm_events.CHANGE_PTE_RANGE],
                        lambda: libc.mprotect(region.addr, region.size, libc.PROT_READ),
                        inlined=("change_pte_range",))
    finally:
        region.close()
    assert counts["change_protection"] == 1
    if "change_pte_range" not in counts:  # the built 7.3 inlines it into change_protection
        pytest.skip("change_pte_range is not a probeable function in this kernel (inlined)")
    assert 32 <= counts["change_pte_range"] <= 33


def test_tracepoints_and_kprobes_count_every_phase_not_only_the_first():
    """Mixed in one perf group, the events of the other PMU stopped counting after the first
    disable/enable (Debian 7.3.4): each phase of several must count its own work."""
    _require_kprobes()
    from bench.attribution import Counters

    region = Region(1024)
    counters = Counters((mm_events.TLB_LOCAL_MM, mm_events.CHANGE_PROTECTION, mm_events.FAULT_USER), 0, inherit=True)
    try:
        region.touch()
        seen = []
        for prot in (libc.PROT_READ, libc.PROT_READ | libc.PROT_WRITE, libc.PROT_READ):
            counters.start()
            libc.mprotect(region.addr, region.size, prot)
            seen.append(counters.stop())
    finally:
        counters.close()
        region.close()
    assert [s["change_protection"] for s in seen] == [1, 1, 1]
    assert seen[0]["tlb_local_mm"] >= 1 and seen[2]["tlb_local_mm"] >= 1  # write-protecting flushes


def test_kprobe_counters_are_inherited_by_new_threads():
    """An inherited kprobe event is re-created at each clone from its name's user pointer: the
    thread must start (it failed with 'can't start new thread' once the name was freed) and
    its calls must count."""
    _require_kprobes()
    region = Region(1024)
    try:
        region.touch()

        def in_a_thread():
            t = threading.Thread(target=lambda: libc.mprotect(region.addr, region.size, libc.PROT_READ))
            t.start()
            t.join()
        counts = _count([mm_events.CHANGE_PROTECTION], in_a_thread, inherit=True)
    finally:
        region.close()
    assert counts["change_protection"] == 1


@pytest.mark.mechanism("idle-page")
def test_idle_bitmap_write_walks_rmap_once_per_page():
    """Marking N present pages idle is N rmap walks; reading the bitmap back re-checks each
    idle-marked page: N more (kernel-interfaces.md, checked live on the built 7.3)."""
    _require_kprobes()
    from bench.kernel import page_idle, pagemap

    region = Region(4096)
    fd = os.open(page_idle.PAGE_IDLE_BITMAP, os.O_RDWR)
    try:
        region.touch()
        pfns = pagemap.entry_pfns(pagemap.read_entries(region.addr, 4096))
        assert (pfns != 0).all()
        words, values = page_idle.bitmap_words(pfns)
        runs = page_idle.word_runs(words)
        events = [mm_events.RMAP_WALK, mm_events.PAGE_IDLE_PTE_REFS]
        marked = _count(events, lambda: page_idle.write_words(fd, words, values, runs))
        read = _count(events, lambda: page_idle.read_words(fd, words, runs))
    finally:
        os.close(fd)
        region.close()
    assert marked["rmap_walk"] == 4096
    assert read["rmap_walk"] == 4096
    assert marked["page_idle_pte_refs"] == 4096


# ---------------------------------------------------------------- sampling: the records, the ring, live

def _record(kind, misc, body):
    return struct.pack("<IHH", kind, misc, 8 + len(body)) + body


def _sample(ip, chain, kernel=True):
    misc = pe.PERF_RECORD_MISC_KERNEL if kernel else pe.PERF_RECORD_MISC_USER
    return _record(pe.PERF_RECORD_SAMPLE, misc, struct.pack(f"<QQ{len(chain)}Q", ip, len(chain), *chain))


K = 0xffffffff81000000


def test_parse_records_decodes_samples_and_lost_and_drops_context_markers():
    data = (_sample(K + 0x10, [pe.PERF_CONTEXT_KERNEL, K + 0x10, K + 0x200, K + 0x300])
            + _record(pe.PERF_RECORD_LOST, 0, struct.pack("<QQ", 7, 5))
            + _sample(0x401000, [], kernel=False)
            + _record(14, 0, b"\0" * 16)  # another record kind (PERF_RECORD_SWITCH here): skipped whole
            + _sample(K + 0x20, [pe.PERF_CONTEXT_KERNEL, K + 0x20]))
    samples = pe.parse_records(data)
    assert len(samples) == 3 and samples.lost == 5
    assert samples.ip.tolist() == [K + 0x10, 0x401000, K + 0x20]
    assert samples.kernel.tolist() == [True, False, True]
    assert samples.starts.tolist() == [0, 3, 3, 4]
    assert samples.chain.tolist() == [K + 0x10, K + 0x200, K + 0x300, K + 0x20]
    assert len(pe.parse_records(b"")) == 0


def test_parse_records_refuses_a_record_running_past_the_data():
    with pytest.raises(ValueError, match="runs past"):
        pe.parse_records(_sample(K, [K])[:-8])


def test_ring_bytes_joins_a_record_that_wraps_around_the_end():
    records = _sample(K + 1, [pe.PERF_CONTEXT_KERNEL, K + 1]) + _sample(K + 2, [pe.PERF_CONTEXT_KERNEL, K + 2])
    size, offset = 128, 16  # data area of 128 bytes after a 16-byte header; 80 bytes of records from 100 on
    ring = bytearray(offset + size)
    tail = 3 * size + 100  # head and tail only grow: the fourth lap
    for i, byte in enumerate(records):
        ring[offset + (tail + i) % size] = byte
    data = pe.ring_bytes(ring, offset, size, tail + len(records), tail)
    assert data == records
    assert pe.parse_records(data).ip.tolist() == [K + 1, K + 2]
    assert pe.ring_bytes(ring, offset, size, tail, tail) == b""


@pytest.mark.skipif(not shutil.which("cc"), reason="no C compiler to read the installed uapi header")
def test_sampling_numbers_match_installed_header(tmp_path):
    names = ["PERF_COUNT_SW_CPU_CLOCK", "PERF_SAMPLE_IP", "PERF_SAMPLE_CALLCHAIN", "PERF_RECORD_LOST",
             "PERF_RECORD_SAMPLE", "PERF_RECORD_MISC_CPUMODE_MASK", "PERF_RECORD_MISC_KERNEL",
             "PERF_RECORD_MISC_USER", "PERF_CONTEXT_KERNEL", "PERF_CONTEXT_USER", "PERF_CONTEXT_MAX"]
    offsets = {"MMAP_PAGE_DATA_HEAD": "data_head", "MMAP_PAGE_DATA_TAIL": "data_tail",
               "MMAP_PAGE_DATA_OFFSET": "data_offset", "MMAP_PAGE_DATA_SIZE": "data_size"}
    seen = _from_header(tmp_path, {key: ("perf_event_mmap_page", f) for key, f in offsets.items()}, names)
    for n in [*names, *offsets]:
        assert getattr(pe, n) == int(seen[n]), n


def _require_kernel_sampling():
    from bench.kernel import kallsyms

    if os.geteuid() != 0:
        pytest.skip("needs root (kernel IPs in samples, /proc/kallsyms addresses)")
    _, why = kallsyms.Symbols.load()
    if why:
        pytest.skip(f"no kernel symbols: {why}")


def test_sampler_sees_the_kernel_work_of_its_own_thread():
    _require_kernel_sampling()
    from bench.kernel import kallsyms

    try:
        sampler = pe.Sampler(20_000, pages=256)
    except OSError as e:
        pytest.skip(f"cannot sample here: {e.strerror}")
    region = Region(256)
    try:
        sampler.enable()
        for _ in range(200):  # fault 256 pages in, give them back: kernel work, ~1 ms each
            region.touch()
            libc.madvise(region.addr, region.size, libc.MADV_DONTNEED)
        sampler.disable()
        samples = sampler.take()
        after = sampler.take()
    finally:
        sampler.close()
        region.close()
    assert len(samples) > 0 and samples.lost == 0
    assert len(after) == 0  # take() moved the tail: nothing is read twice
    symbols, _ = kallsyms.Symbols.load()
    names = {symbols.name(i) for i in symbols.lookup(samples.chain)}
    assert samples.kernel.any()
    assert {"madvise_dontneed_free", "do_madvise", "handle_mm_fault", "exc_page_fault"} & names, sorted(names)[:40]
