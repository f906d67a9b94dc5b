"""Shared by ``shmem-zap-minor`` and ``uffd-minor``: a shmem arena registered for userfaultfd
MINOR faults, served by the compiled server (``bench.kernel.uffd_server``).

MINOR registration disables fault-around, so after ``MADV_DONTNEED`` (which drops the PTEs
and keeps the pages in the page cache) every first access to a page, read or write, is
one MINOR fault; the server resolves it with ``UFFDIO_CONTINUE`` (which maps the page
writable, so a later write does not fault again) and records the page. Faults are
synchronous: the faulting thread waits for the server, so it must not hold the GIL
(the workloads touch memory from nogil code).
"""

from __future__ import annotations

from functools import partial

from bench.kernel import libc, probe, uffd
from bench.micro import kit
from bench.trackers._base import Tracker


class MinorServed(Tracker):
    """Mixin, first in the bases: MINOR registration + fault server from ``start`` to ``stop``.

    Option ``server_cpus`` (a set of CPUs, default: not pinned) places the server thread;
    the runner sets it from the run's fault placement (``bench.fault_path``).
    """

    serves_faults = True
    mechanism = "uffd-minor"
    kernel_probe = staticmethod(probe.probe_uffd_minor)
    kconfig = ("USERFAULTFD", "SHMEM")
    fault_kind = "uffd-minor"  # bench.fault_path's round trip: one MINOR fault, one UFFDIO_CONTINUE
    interferences = {"tlb-flush": "tracks userfaultfd MINOR faults on a zapped range (no PTEs to flush)"}

    @classmethod
    def micro_cases(cls) -> list:
        what = ("write to a zapped shmem page registered MODE_MINOR: round trip through the compiled "
                "UFFDIO_CONTINUE server")
        out = kit.fault_cases("uffd-minor", cls.mechanism, ("shmem",), what, _fault_served)
        for placement, where in kit.PLACEMENTS.items():
            out += kit.fault_cases(f"uffd-minor-{placement}", cls.mechanism, ("shmem",),
                                   f"as fault/uffd-minor, {where}", partial(_fault_served, placement=placement),
                                   placement)
        return out

    def __init__(self, **options):
        super().__init__(**options)
        self._uffd: uffd.Userfaultfd | None = None
        self._server = None  # a uffd_server.MinorFaultServer from start to stop
        self._counters_at_arm = (0, 0)

    def start(self, arena) -> None:
        from bench.kernel import uffd_server  # numba: loaded by a run, not by the registry or probe

        uffd_server.warmup()
        super().start(arena)
        self._uffd = uffd.Userfaultfd(uffd.UFFD_FEATURE_MINOR_SHMEM)
        self._uffd.register(arena.addr, arena.size, uffd.UFFDIO_REGISTER_MODE_MINOR)
        self._server = uffd_server.MinorFaultServer(self._uffd, arena.addr, arena.npages, arena.page_size,
                                                    self.options.get("server_cpus"))

    def _zap(self) -> None:
        """Drop the arena's PTEs; the pages stay in the page cache, the next access is a MINOR fault."""
        self._counters_at_arm = (int(self._server.counters[0]), int(self._server.counters[1]))
        libc.madvise(self.arena.addr, self.arena.size, libc.MADV_DONTNEED)

    def _served_since_arm(self) -> dict:
        """Faults the server resolved since the last zap, and CONTINUEs that failed (then retried)."""
        return {"uffd_faults": int(self._server.counters[0]) - self._counters_at_arm[0],
                "continue_failed": int(self._server.counters[1]) - self._counters_at_arm[1]}

    def stop(self) -> None:
        # Unregister before stopping the server, so no access can block with nobody to resolve it.
        if self._uffd is not None:
            self._uffd.close()
            self._uffd = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        super().stop()


def _fault_served(size, stack, backing, placement="unpinned"):
    """micro's fault/uffd-minor*: every page of a zapped MODE_MINOR shmem arena touched once, each
    fault a round trip through the compiled server."""
    from bench.kernel import uffd_server

    arena, loops = kit.fault_arena(stack, size, backing)
    uffd_server.warmup()
    u = stack.enter_context(uffd.Userfaultfd(uffd.UFFD_FEATURE_MINOR_SHMEM))
    u.register(arena.addr, arena.size, uffd.UFFDIO_REGISTER_MODE_MINOR)
    server = uffd_server.MinorFaultServer(u, arena.addr, arena.npages, arena.page_size,
                                          kit.placed(stack, placement).server)
    stack.callback(server.stop)
    stack.callback(u.close)  # unregister first, so no fault can wait with nobody to resolve it
    return kit.touch_after(loops, arena, partial(libc.madvise, arena.addr, arena.size, libc.MADV_DONTNEED))
