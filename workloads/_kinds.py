"""The three generator kinds a pattern builds on; each binds one touch/record kernel pair.

  SegmentWorkload     patterns say which segments (start, pages, weight, write prob) an
                      interval uses; uniform, hotcold, phase, masim
  AliasWorkload       patterns give a weight per page once; zipf
  SequentialWorkload  patterns give start, stride; scan, stride

Tables are checked against the arena here, once per interval, because the kernels do not
bounds-check.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from workloads import _kernels as K
from workloads import _base
from workloads._base import Workload

# _base cannot import numba code (import workloads stays cheap) so it keeps its own copy.
assert K.MAX_PAGE_SIZE == _base.MAX_PAGE_SIZE

__all__ = ["Segment", "SegmentWorkload", "AliasWorkload", "SequentialWorkload"]


class Segment(NamedTuple):
    start: int                 # first page
    pages: int                 # number of pages, >= 1
    weight: float              # relative probability that an access lands here, >= 0
    write_prob: float = -1.0   # probability an access here writes; < 0: the write_ratio


class SegmentWorkload(Workload):
    _touch = staticmethod(K.touch_segments)
    _record = staticmethod(K.record_segments)

    def segments(self, interval: int) -> list[Segment]:
        """The segment table of *interval* (plain Python, O(segments))."""
        raise NotImplementedError

    def _interval_args(self, interval: int) -> tuple:
        return (self._table(self.segments(interval)),)

    def _touch_call(self, plan: tuple) -> tuple[Callable[..., int], tuple]:
        n, key, table = plan
        if len(table) == 1:     # record_segments replays this choice
            return K.touch_span, (n, key, *table[0, [K.SEG_START, K.SEG_PAGES, K.SEG_WTHR]])
        return K.touch_segments, plan

    def _warmup_plans(self) -> list[tuple]:
        # Both kernels, whatever this workload's first interval uses.
        tables = [[Segment(0, 1, 1.0)], [Segment(0, 1, 1.0), Segment(0, 1, 1.0)]]
        return [(np.int64(0), np.uint64(1), self._table(t)) for t in tables]

    def _table(self, segments: list[Segment]) -> np.ndarray:
        # Zero-weight segments are dropped: a rounding sliver must never select them.
        live = [s for s in segments if s.weight > 0]
        self._require(bool(live), "every interval needs a segment with a positive weight")
        total, acc = sum(s.weight for s in live), 0.0
        table = np.empty((len(live), K.SEG_COLUMNS), np.uint64)
        for row, seg in enumerate(live):
            self._require(0 <= seg.start and seg.pages >= 1 and seg.start + seg.pages
                          <= self.npages, f"segment {seg} does not fit {self.npages} pages")
            acc += seg.weight
            last = row == len(live) - 1
            p = self.write_ratio if seg.write_prob < 0 else seg.write_prob
            table[row, K.SEG_START] = seg.start
            table[row, K.SEG_PAGES] = seg.pages
            table[row, K.SEG_CUM] = K.ONE32 if last else min(K.ONE32, int(acc / total * K.ONE32))
            table[row, K.SEG_WTHR] = K.write_threshold(p)
        return table


class AliasWorkload(Workload):
    _touch = staticmethod(K.touch_alias)
    _record = staticmethod(K.record_alias)
    _alias: np.ndarray

    def _set_weights(self, weights: np.ndarray) -> None:
        """Per-page access weights (float64[npages], >= 0) -> the alias table."""
        self._require(weights.shape == (self.npages,) and bool(np.all(weights >= 0))
                      and float(weights.sum()) > 0, "page weights must be >= 0, not all 0")
        table = K.alias_table(np.ascontiguousarray(weights, np.float64))
        table.flags.writeable = False    # shared by every interval and thread
        self._alias = table

    def _interval_args(self, interval: int) -> tuple:
        return (self._alias, K.write_threshold(self.write_ratio))


class SequentialWorkload(Workload):
    """A cursor over pages start, start+stride, ... < npages; each access moves it one step."""

    _touch = staticmethod(K.touch_sequential)
    _record = staticmethod(K.record_sequential)
    start: int
    stride: int = 1

    @property
    def span(self) -> int:
        """Distinct cursor positions before it wraps."""
        return -(-(self.npages - self.start) // self.stride)

    def _setup(self) -> None:
        self._int_in("start", self.start, 0, self.npages - 1)
        self._int_in("stride", self.stride, 1, self.npages)

    def _interval_args(self, interval: int) -> tuple:
        u64 = np.uint64
        return (u64(self.start), u64(self.stride), u64(self.span),
                K.write_threshold(self.write_ratio))

    def _thread_args(self, shared: tuple, first: int) -> tuple:
        # Threads walk consecutive chunks of one endless cursor sequence.
        start, stride, span, wthr = shared
        return (start, stride, span, np.uint64(first % int(span)), wthr)
