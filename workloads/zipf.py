"""zipf: page popularity follows Zipf's law, P(rank r) ~ 1 / (r + 1)**s.

With scatter=0 page 0 is rank 0 (the hottest) and popularity falls with the address; with
scatter=1 ranks go to pages through a seeded permutation, so hot pages are spread out.
Pages are drawn from an alias table over pages (``_kinds.AliasWorkload``): the permutation
is applied once, to the weights, so scattering costs nothing per access.
"""

from __future__ import annotations

import numpy as np

from workloads._kernels import DOMAIN_ZIPF_PERMUTATION, hash_array, stream_key
from workloads._kinds import AliasWorkload

__all__ = ["Zipf"]


class Zipf(AliasWorkload):
    """Zipf(s) over pages, in address order or scattered."""

    name = "zipf"
    defaults = {"s": 1.0, "scatter": 0}
    s: float
    scatter: int

    def _setup(self) -> None:
        self._require(self.s > 0, f"s must be > 0, got {self.s:g}")
        self._require(self.s <= 100, f"s must be <= 100 (larger is one page), got {self.s:g}")
        self._require(self.scatter in (0, 1), f"scatter must be 0 or 1, got {self.scatter}")
        self._set_weights(self._weights_by_page())

    def rank_to_page(self) -> np.ndarray:
        """int64[npages]: the page holding each popularity rank (rank 0 hottest)."""
        ranks = np.arange(self.npages, dtype=np.uint64)
        if not self.scatter:
            return ranks.astype(np.int64)
        # A seeded permutation by sorting hashes: plain numpy, identical in every process.
        order = hash_array(ranks, stream_key(self.seed, DOMAIN_ZIPF_PERMUTATION))
        return np.argsort(order, kind="stable").astype(np.int64)

    def _weights_by_page(self) -> np.ndarray:
        ranks = np.arange(1, self.npages + 1, dtype=np.float64)
        by_rank = ranks ** -self.s
        weights = np.empty(self.npages, np.float64)
        weights[self.rank_to_page()] = by_rank
        return weights
