"""uniform: every page of the arena equally likely."""

from __future__ import annotations

from workloads._kinds import Segment, SegmentWorkload

__all__ = ["Uniform"]


class Uniform(SegmentWorkload):
    """Each access picks a page uniformly from the whole arena."""

    name = "uniform"
    defaults = {}

    def segments(self, interval: int) -> list[Segment]:
        return [Segment(0, self.npages, 1.0)]
