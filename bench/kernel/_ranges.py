"""Compiled range -> bitmap expansion for ``page_region`` answers (numba; imported lazily so the
probe never pays for numba). A scan of 1 GiB returns up to 262144 pages; a numpy
bincount/cumsum over the whole bitmap costs more than the ioctl itself."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def fill_ranges(starts: np.ndarray, ends: np.ndarray, base: int, page_shift: int, npages: int) -> np.ndarray:
    out = np.zeros(npages, np.bool_)
    for i in range(starts.size):
        first = max((np.int64(starts[i]) - base) >> page_shift, 0)
        last = min((np.int64(ends[i]) - base + (1 << page_shift) - 1) >> page_shift, npages)
        for p in range(first, last):
            out[p] = True
    return out
