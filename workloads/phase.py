"""phase: a hot set that jumps to a new place every few intervals.

The arena is cut into slots of hot*npages pages. Epoch e = interval // every puts the hot
set in a seeded slot whose index has the parity of e, so consecutive hot sets never overlap.
"""

from __future__ import annotations

from workloads._kernels import DOMAIN_PHASE_SLOT, stream_key
from workloads._kinds import Segment, SegmentWorkload

__all__ = ["Phase"]


class Phase(SegmentWorkload):
    """Like hotcold, but the hot set moves every `every` intervals."""

    name = "phase"
    defaults = {"hot": 0.1, "p": 0.9, "every": 2}
    hot: float
    p: float
    every: int

    def _setup(self) -> None:
        self._float_in("hot", self.hot, 0.0, 0.5, open_lo=True)
        self._float_in("p", self.p, 0.0, 1.0)
        self._require(self.every >= 1, f"every must be >= 1, got {self.every}")
        self._require(self.slots >= 2, f"needs room for two hot sets: npages={self.npages} "
                                       f"is too small for hot={self.hot:g}")

    @property
    def hot_pages(self) -> int:
        return max(1, round(self.hot * self.npages))

    @property
    def slots(self) -> int:
        return self.npages // self.hot_pages

    def hot_range(self, interval: int) -> range:
        """The hot pages of *interval*."""
        epoch = interval // self.every
        parity = epoch % 2
        choices = (self.slots - parity + 1) // 2        # slots with index of that parity
        slot = parity + 2 * (stream_key(self.seed, DOMAIN_PHASE_SLOT, epoch) % choices)
        return range(slot * self.hot_pages, (slot + 1) * self.hot_pages)

    def segments(self, interval: int) -> list[Segment]:
        hot = self.hot_range(interval)
        cold = self.npages - len(hot)
        before = Segment(0, hot.start, (1.0 - self.p) * hot.start / cold)
        after = Segment(hot.stop, self.npages - hot.stop,
                        (1.0 - self.p) * (self.npages - hot.stop) / cold)
        return [s for s in (before, Segment(hot.start, len(hot), self.p), after) if s.pages]
