"""scan and stride: a cursor sweeping the arena, wrapping at the end.

scan visits pages start, start+1, ...; stride visits start, start+stride, ... (so only pages
congruent to start modulo stride). Each access advances the cursor one step; the cursor
continues across intervals and threads (thread t takes the next chunk of the sequence).
Within each run of 64 accesses the pages are visited in an interleaved order (which decides
neither the truth nor the bytes written: workloads._kernels.SWEEP_ORDER says why).
"""

from __future__ import annotations

from workloads._kinds import SequentialWorkload

__all__ = ["Scan", "Stride"]


class Scan(SequentialWorkload):
    """A sequential sweep over pages [start, npages), one page per access."""

    name = "scan"
    defaults = {"start": 0}


class Stride(SequentialWorkload):
    """A sweep over every stride-th page from start."""

    name = "stride"
    defaults = {"stride": 16, "start": 0}
