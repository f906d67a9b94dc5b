"""``hotbench evict``: the VMM eviction workflow under concurrent vCPU writes, integrity-checked.

``workflow`` runs it (arena, vCPU threads, the VMM's rounds, rows); ``variants`` holds each
variant's exact ioctl sequence; ``_core`` the compiled fault handler and VMM loops; ``_stats``
the per-round statistics. Others use the names below.
"""

from bench.evict.workflow import (VARIANTS, EvictParams, EvictResult, detector_for, placement_of, run, run_matrix,
                                  summarize, unavailable, variant_names)

__all__ = ["EvictParams", "EvictResult", "VARIANTS", "variant_names", "unavailable", "detector_for", "placement_of",
           "run", "run_matrix", "summarize"]
