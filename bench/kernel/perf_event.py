"""perf_event_open(2) counting and sampling (include/uapi/linux/perf_event.h; tools/perf/design.txt).

hotbench counts kernel events — tracepoints (``PERF_TYPE_TRACEPOINT``, the id read from
tracefs ``events/<system>/<name>/id``) and kernel functions (the ``kprobe`` PMU: its type from
``/sys/bus/event_source/devices/kprobe/type``, ``config1`` = a pointer to the function's name)
— in counting mode only: no ring buffer, no samples, no output of the ``perf`` tool. A group
of events on one task is reset, enabled and disabled with one ioctl each
(``PERF_IOC_FLAG_GROUP``) and read with one ``read(2)`` (``PERF_FORMAT_GROUP``).

The events hotbench counts are declared as ``Tracepoint`` and ``Kprobe`` values: on each
tracker class (``kernel_events``, what its cost depends on) and in ``bench.attribution`` (the
set every phase gets). A kprobe opened through the PMU is private to its file descriptor: it
never appears in tracefs ``kprobe_events`` and disappears when the descriptor is closed, so
counting leaves no tracing state behind.

Failures: every call raises OSError naming the event (EACCES/EPERM: not root or
``perf_event_paranoid`` too high; ENOENT/EINVAL from a kprobe: no such function, or one that
cannot be probed — inlined, ``notrace`` or blacklisted; EINVAL from a filter: a field the
tracepoint lacks).

Sampling (``Sampler``, for ``hotbench run --kernel-profile`` where the kernel has no function
profiler): a software ``cpu-clock`` event on one thread takes a sample — the interrupted
instruction pointer and the kernel callchain — every ``sample_period`` ns the thread runs, into
a ring buffer mapped from the event's fd (``struct perf_event_mmap_page``, then
``PERF_RECORD_*`` records). ``parse_records`` decodes them; nothing of the ``perf`` tool is used.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
from dataclasses import dataclass

import numpy as np

from bench.kernel import libc, procfs, tracefs

__all__ = ["perf_event_attr", "PERF_TYPE_SOFTWARE", "PERF_TYPE_TRACEPOINT", "PERF_FORMAT_TOTAL_TIME_ENABLED",
           "PERF_FORMAT_TOTAL_TIME_RUNNING", "PERF_FORMAT_GROUP", "PERF_EVENT_IOC_ENABLE", "PERF_EVENT_IOC_DISABLE",
           "PERF_EVENT_IOC_RESET", "PERF_EVENT_IOC_SET_FILTER", "PERF_IOC_FLAG_GROUP", "PERF_FLAG_FD_CLOEXEC",
           "KPROBE_PMU_TYPE", "PERF_EVENT_PARANOID", "perf_event_open", "kprobe_pmu_type", "read_group",
           "Tracepoint", "Kprobe", "Event", "probe", "TLB_FLUSH_ON_TASK_SWITCH", "TLB_REMOTE_SHOOTDOWN",
           "TLB_LOCAL_SHOOTDOWN", "TLB_LOCAL_MM_SHOOTDOWN", "TLB_REMOTE_SEND_IPI", "PERF_COUNT_SW_CPU_CLOCK",
           "PERF_SAMPLE_IP", "PERF_SAMPLE_CALLCHAIN", "PERF_RECORD_LOST", "PERF_RECORD_SAMPLE",
           "PERF_RECORD_MISC_CPUMODE_MASK", "PERF_RECORD_MISC_KERNEL", "PERF_RECORD_MISC_USER", "PERF_CONTEXT_KERNEL",
           "PERF_CONTEXT_USER", "PERF_CONTEXT_MAX", "Samples", "parse_records", "ring_bytes", "Sampler"]

__NR_perf_event_open = 298  # x86_64 (arch/x86/entry/syscalls/syscall_64.tbl)
PERF_EVENT_PARANOID = "/proc/sys/kernel/perf_event_paranoid"
KPROBE_PMU_TYPE = "/sys/bus/event_source/devices/kprobe/type"  # dynamic PMU, 4.17+

# enum perf_type_id
PERF_TYPE_HARDWARE, PERF_TYPE_SOFTWARE, PERF_TYPE_TRACEPOINT = 0, 1, 2

# enum perf_sw_ids
PERF_COUNT_SW_CPU_CLOCK, PERF_COUNT_SW_TASK_CLOCK = 0, 1

# enum perf_event_sample_format
PERF_SAMPLE_IP = 1 << 0
PERF_SAMPLE_CALLCHAIN = 1 << 5

# enum perf_event_type (struct perf_event_header.type)
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9

# struct perf_event_header.misc
PERF_RECORD_MISC_CPUMODE_MASK = 7
PERF_RECORD_MISC_KERNEL = 1
PERF_RECORD_MISC_USER = 2

# enum perf_callchain_context: markers inside a callchain, as the u64 the kernel writes
_U64 = (1 << 64) - 1
PERF_CONTEXT_KERNEL = -128 & _U64
PERF_CONTEXT_USER = -512 & _U64
PERF_CONTEXT_MAX = -4095 & _U64  # every value from here up is a marker, not an address

# struct perf_event_mmap_page: offsets of the ring buffer's control words (Linux 4.1+)
MMAP_PAGE_DATA_HEAD, MMAP_PAGE_DATA_TAIL, MMAP_PAGE_DATA_OFFSET, MMAP_PAGE_DATA_SIZE = 1024, 1032, 1040, 1048

# enum perf_event_read_format
PERF_FORMAT_TOTAL_TIME_ENABLED = 1 << 0
PERF_FORMAT_TOTAL_TIME_RUNNING = 1 << 1
PERF_FORMAT_ID = 1 << 2
PERF_FORMAT_GROUP = 1 << 3

# ioctls on an event fd ('$' = 0x24); enum perf_event_ioc_flags
PERF_EVENT_IOC_ENABLE = libc._IO(0x24, 0)
PERF_EVENT_IOC_DISABLE = libc._IO(0x24, 1)
PERF_EVENT_IOC_RESET = libc._IO(0x24, 3)
PERF_EVENT_IOC_SET_FILTER = libc._IOW(0x24, 6, ctypes.sizeof(ctypes.c_void_p))
PERF_IOC_FLAG_GROUP = 1 << 0

PERF_FLAG_FD_CLOEXEC = 1 << 3  # perf_event_open flags

# enum tlb_flush_reason (include/linux/mm_types.h), the ``reason`` field of tlb:tlb_flush
TLB_FLUSH_ON_TASK_SWITCH, TLB_REMOTE_SHOOTDOWN, TLB_LOCAL_SHOOTDOWN = 0, 1, 2
TLB_LOCAL_MM_SHOOTDOWN, TLB_REMOTE_SEND_IPI = 3, 4


class perf_event_attr(ctypes.Structure):
    """struct perf_event_attr up to ``sig_data`` (PERF_ATTR_SIZE_VER7, 128 bytes, Linux 5.13); a
    kernel that knows a longer struct reads the missing tail as zeros, an older one accepts a
    longer struct whose extra bytes are zero. Unions are flattened to the member hotbench uses
    (``config1`` is also ``kprobe_func``, ``config2`` also ``probe_offset``)."""

    _fields_ = [
        ("type", ctypes.c_uint32), ("size", ctypes.c_uint32), ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64), ("sample_type", ctypes.c_uint64), ("read_format", ctypes.c_uint64),
        ("disabled", ctypes.c_uint64, 1), ("inherit", ctypes.c_uint64, 1), ("pinned", ctypes.c_uint64, 1),
        ("exclusive", ctypes.c_uint64, 1), ("exclude_user", ctypes.c_uint64, 1),
        ("exclude_kernel", ctypes.c_uint64, 1), ("exclude_hv", ctypes.c_uint64, 1),
        ("exclude_idle", ctypes.c_uint64, 1), ("mmap", ctypes.c_uint64, 1), ("comm", ctypes.c_uint64, 1),
        ("freq", ctypes.c_uint64, 1), ("inherit_stat", ctypes.c_uint64, 1), ("enable_on_exec", ctypes.c_uint64, 1),
        ("task", ctypes.c_uint64, 1), ("watermark", ctypes.c_uint64, 1), ("precise_ip", ctypes.c_uint64, 2),
        ("mmap_data", ctypes.c_uint64, 1), ("sample_id_all", ctypes.c_uint64, 1),
        ("exclude_host", ctypes.c_uint64, 1), ("exclude_guest", ctypes.c_uint64, 1),
        ("exclude_callchain_kernel", ctypes.c_uint64, 1), ("exclude_callchain_user", ctypes.c_uint64, 1),
        ("mmap2", ctypes.c_uint64, 1), ("comm_exec", ctypes.c_uint64, 1), ("use_clockid", ctypes.c_uint64, 1),
        ("context_switch", ctypes.c_uint64, 1), ("write_backward", ctypes.c_uint64, 1),
        ("namespaces", ctypes.c_uint64, 1), ("ksymbol", ctypes.c_uint64, 1), ("bpf_event", ctypes.c_uint64, 1),
        ("aux_output", ctypes.c_uint64, 1), ("cgroup", ctypes.c_uint64, 1), ("text_poke", ctypes.c_uint64, 1),
        ("build_id", ctypes.c_uint64, 1), ("inherit_thread", ctypes.c_uint64, 1),
        ("remove_on_exec", ctypes.c_uint64, 1), ("sigtrap", ctypes.c_uint64, 1),
        ("__reserved_1", ctypes.c_uint64, 26),
        ("wakeup_events", ctypes.c_uint32), ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64), ("config2", ctypes.c_uint64),
        ("branch_sample_type", ctypes.c_uint64), ("sample_regs_user", ctypes.c_uint64),
        ("sample_stack_user", ctypes.c_uint32), ("clockid", ctypes.c_int32),
        ("sample_regs_intr", ctypes.c_uint64), ("aux_watermark", ctypes.c_uint32),
        ("sample_max_stack", ctypes.c_uint16), ("__reserved_2", ctypes.c_uint16),
        ("aux_sample_size", ctypes.c_uint32), ("__reserved_3", ctypes.c_uint32), ("sig_data", ctypes.c_uint64),
    ]


PERF_ATTR_SIZE_VER7 = 128


def perf_event_open(attr: perf_event_attr, pid: int, cpu: int, group_fd: int, what: str) -> int:
    """The new event's fd (close-on-exec). *pid* 0 = the calling thread, *cpu* -1 = any CPU."""
    attr.size = ctypes.sizeof(attr)
    return libc.syscall5(__NR_perf_event_open, ctypes.addressof(attr), pid, cpu, group_fd, PERF_FLAG_FD_CLOEXEC,
                          f"perf_event_open({what})")


def kprobe_pmu_type() -> int | None:
    """The kprobe PMU's ``type``, or None when this kernel has none (no CONFIG_KPROBE_EVENTS)."""
    text = procfs.read_text(KPROBE_PMU_TYPE)
    return int(text) if text else None


def read_group(fd: int, count: int) -> tuple[list[int], int, int]:
    """One ``read(2)`` of a group leader opened with ``GROUP_READ_FORMAT``: (values in the order
    the events joined the group, time enabled ns, time running ns)."""
    size = 8 * (3 + count)
    data = os.read(fd, size)
    if len(data) != size:
        raise OSError(0, f"short read {len(data)}/{size} bytes", "perf event group")
    nr, enabled, running, *values = struct.unpack(f"<{3 + count}Q", data)
    if nr != count:
        raise OSError(0, f"group has {nr} events, expected {count}", "perf event group")
    return values, enabled, running


GROUP_READ_FORMAT = PERF_FORMAT_GROUP | PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING


# ---------------------------------------------------------------- the events hotbench counts

@dataclass(frozen=True)
class Tracepoint:
    """A tracepoint counted per hit, optionally only the hits its tracefs *filter* accepts
    (e.g. ``reason == 2``). *name* keys the results column; *unit* says what one hit is."""

    system: str
    event: str
    name: str
    unit: str
    filter: str | None = None

    @property
    def source(self) -> str:
        return f"tracepoint {self.system}:{self.event}" + (f" if {self.filter}" if self.filter else "")

    def attr(self) -> perf_event_attr:
        return perf_event_attr(type=PERF_TYPE_TRACEPOINT, config=tracefs.event_id(self.system, self.event))

    def setup(self, fd: int) -> None:
        if self.filter:
            text = ctypes.create_string_buffer(self.filter.encode())
            libc.ioctl(fd, PERF_EVENT_IOC_SET_FILTER, ctypes.addressof(text),
                        f"PERF_EVENT_IOC_SET_FILTER({self.filter!r}) on {self.system}:{self.event}")


@dataclass(frozen=True)
class Kprobe:
    """Entries into the kernel function *function*, through the kprobe PMU."""

    function: str
    name: str
    unit: str

    @property
    def source(self) -> str:
        return f"kprobe {self.function}"

    def attr(self) -> perf_event_attr:
        pmu = kprobe_pmu_type()
        if pmu is None:
            raise OSError(2, procfs.config_reason("no kprobe PMU", "CONFIG_KPROBE_EVENTS"), KPROBE_PMU_TYPE)
        return perf_event_attr(type=pmu, config=0, config1=ctypes.addressof(_kprobe_name(self.function)), config2=0)

    def setup(self, fd: int) -> None:
        pass


Event = Tracepoint | Kprobe

# ``config1`` of a kprobe event points at its function's name, and the kernel reads that user
# pointer again whenever an *inherited* copy of the event is made (at every clone of a counted
# thread: perf_kprobe_init), so the name must stay at that address for the life of the process.
_kprobe_names: dict[str, ctypes.Array] = {}


def _kprobe_name(function: str) -> ctypes.Array:
    if function not in _kprobe_names:
        _kprobe_names[function] = ctypes.create_string_buffer(function.encode())
    return _kprobe_names[function]


def open_event(event: Event, pid: int, group_fd: int = -1, inherit: bool = False) -> int:
    """Open *event* on task *pid* (0 = this thread), disabled, counting kernel and user mode,
    into the group of *group_fd* (-1: as a new group leader reading ``GROUP_READ_FORMAT``)."""
    attr = event.attr()
    attr.disabled = 1 if group_fd == -1 else 0  # members follow their leader
    attr.inherit = int(inherit)
    attr.read_format = GROUP_READ_FORMAT
    fd = perf_event_open(attr, pid, -1, group_fd, f"{event.source}, pid {pid}")
    try:
        event.setup(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def probe() -> str | None:
    """None when this process may count tracepoints on its own threads, else why not."""
    why = tracefs.probe()
    if why:
        return f"tracepoint ids unreadable: {why}"
    counter = Tracepoint("exceptions", "page_fault_user", "probe", "")
    try:
        os.close(open_event(counter, 0))
    except OSError as e:
        paranoid = procfs.read_text(PERF_EVENT_PARANOID)
        hint = f" (perf_event_paranoid is {paranoid}; counting tracepoints needs root or CAP_PERFMON)" \
            if e.errno in (1, 13) else ""
        return f"{e.filename or 'perf_event_open'} failed: {e.strerror}{hint}"
    return None


# ---------------------------------------------------------------- sampling

@dataclass(frozen=True)
class Samples:
    """Decoded ``PERF_RECORD_SAMPLE`` records of a ``PERF_SAMPLE_IP | PERF_SAMPLE_CALLCHAIN``
    event: per sample its IP and whether it hit kernel mode; the callchains' addresses flat in
    ``chain`` (context markers removed), sample *i*'s at ``chain[starts[i]:starts[i + 1]]``;
    ``lost`` samples the kernel dropped because the buffer was full (``PERF_RECORD_LOST``)."""

    ip: np.ndarray  # uint64
    kernel: np.ndarray  # bool
    chain: np.ndarray  # uint64
    starts: np.ndarray  # int64, len(ip) + 1
    lost: int

    def __len__(self) -> int:
        return len(self.ip)


_HEADER = struct.Struct("<IHH")  # struct perf_event_header: type, misc, size
_IP_NR = struct.Struct("<QQ")  # sample body: ip, callchain nr (ips follow)


def parse_records(data: bytes) -> Samples:
    """The samples in *data*, a run of records as the ring buffer holds them (oldest first)."""
    ips, kernel, chains, lost = [], [], [], 0
    view, offset = memoryview(data), 0
    while offset + _HEADER.size <= len(data):
        kind, misc, size = _HEADER.unpack_from(view, offset)
        if size < _HEADER.size or offset + size > len(data):
            raise ValueError(f"perf record of {size} bytes at offset {offset} runs past {len(data)}")
        if kind == PERF_RECORD_SAMPLE:
            ip, nr = _IP_NR.unpack_from(view, offset + _HEADER.size)
            ips.append(ip)
            kernel.append((misc & PERF_RECORD_MISC_CPUMODE_MASK) == PERF_RECORD_MISC_KERNEL)
            chain = np.frombuffer(view, np.uint64, nr, offset + _HEADER.size + _IP_NR.size)
            chains.append(chain[chain < PERF_CONTEXT_MAX])
        elif kind == PERF_RECORD_LOST:
            lost += struct.unpack_from("<QQ", view, offset + _HEADER.size)[1]  # id, lost
        offset += size
    lengths = np.array([len(c) for c in chains], np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    chain = np.concatenate(chains) if chains else np.zeros(0, np.uint64)
    return Samples(np.array(ips, np.uint64), np.array(kernel, bool), chain, starts, lost)


def ring_bytes(buffer, data_offset: int, data_size: int, head: int, tail: int) -> bytes:
    """The bytes from *tail* to *head* of a ring buffer of *data_size* bytes at *data_offset* in
    *buffer*: head and tail only grow, so their difference is what is unread, and a record may
    run over the end of the data area and on from its start."""
    start, size = tail % data_size, head - tail
    first = buffer[data_offset + start: data_offset + min(start + size, data_size)]
    return bytes(first) + bytes(buffer[data_offset: data_offset + size - len(first)])


class Sampler:
    """``cpu-clock`` samples (IP + kernel callchain) of the calling thread every *period_ns* of
    its run time while enabled, into a ring buffer of *pages* pages (a power of two).

    ``enable()`` / ``disable()`` bracket what to sample; ``take()`` returns the samples taken
    since the last ``take()`` and frees their room. User-mode samples are kept (IP only: no user
    callchain is unwound), so the samples add up to all of the thread's time, kernel and user.
    Under QEMU's icount the guest's clock counts instructions, so the hrtimer behind cpu-clock
    fires every *period_ns* guest instructions: an instruction profile; natively a time profile.
    """

    def __init__(self, period_ns: int, pages: int = 1024):
        self.period_ns = period_ns
        attr = perf_event_attr(type=PERF_TYPE_SOFTWARE, config=PERF_COUNT_SW_CPU_CLOCK, sample_period=period_ns,
                               sample_type=PERF_SAMPLE_IP | PERF_SAMPLE_CALLCHAIN, disabled=1,
                               exclude_callchain_user=1)
        self.fd = perf_event_open(attr, 0, -1, -1, f"cpu-clock sampling every {period_ns} ns")
        try:
            self._map = mmap.mmap(self.fd, (1 + pages) * mmap.PAGESIZE, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError:
            os.close(self.fd)
            raise
        self._data_offset, self._data_size = struct.unpack_from("<QQ", self._map, MMAP_PAGE_DATA_OFFSET)

    def enable(self) -> None:
        libc.ioctl(self.fd, PERF_EVENT_IOC_ENABLE, 0, "PERF_EVENT_IOC_ENABLE (sampling)")

    def disable(self) -> None:
        libc.ioctl(self.fd, PERF_EVENT_IOC_DISABLE, 0, "PERF_EVENT_IOC_DISABLE (sampling)")

    def take(self) -> Samples:
        """The records between the buffer's tail and head, decoded; the tail moves to the head
        (the kernel may then reuse that room). Call with the event disabled."""
        head, tail = struct.unpack_from("<QQ", self._map, MMAP_PAGE_DATA_HEAD)
        data = ring_bytes(self._map, self._data_offset, self._data_size, head, tail)
        struct.pack_into("<Q", self._map, MMAP_PAGE_DATA_TAIL, head)
        return parse_records(data)

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)
