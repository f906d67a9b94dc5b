"""hotcold: a fixed hot set at the start of the arena takes most accesses."""

from __future__ import annotations

from workloads._kinds import Segment, SegmentWorkload

__all__ = ["HotCold"]


class HotCold(SegmentWorkload):
    """Pages [0, hot*npages) are hot and take a share p of the accesses; the rest are cold.

    ``hot_count=N`` (N > 0) fixes the hot set at N pages whatever the arena's size instead:
    a size sweep then holds the working set still while memory grows (the scaling question).
    """

    name = "hotcold"
    defaults = {"hot": 0.1, "p": 0.9, "hot_count": 0}
    hot: float
    p: float
    hot_count: int

    def _setup(self) -> None:
        self._float_in("hot", self.hot, 0.0, 1.0, open_lo=True, open_hi=True)
        self._float_in("p", self.p, 0.0, 1.0)
        self._require(self.npages >= 2, f"needs at least 2 pages, got npages={self.npages}")
        self._require(0 <= self.hot_count < self.npages,
                      f"hot_count must be in [0, npages={self.npages}), got {self.hot_count}")

    @property
    def hot_pages(self) -> int:
        if self.hot_count:
            return self.hot_count
        # At least one hot and one cold page, whatever the rounding.
        return min(self.npages - 1, max(1, round(self.hot * self.npages)))

    def hot_range(self, interval: int = 0) -> range:
        """The hot pages (the same in every interval; the argument matches phase's)."""
        return range(0, self.hot_pages)

    def segments(self, interval: int) -> list[Segment]:
        hot = self.hot_pages
        return [Segment(0, hot, self.p), Segment(hot, self.npages - hot, 1.0 - self.p)]
