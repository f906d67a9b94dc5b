"""Per-interval accuracy of one tracker observation against the workload's ground truth: the
confusion counts a run writes into each results row (the rates derived from them, for
reports and figures, are ``analysis.metrics``).

Everything is counted per base page. A tracker is scored against the truth it can
see — written pages for write-only mechanisms, pages read or written otherwise — and,
in the ``*_any`` columns, against every page accessed, so write-only trackers show
what they miss. Region trackers count a page as reported when its region's
``nr_accesses`` > 0; aggregate trackers have no per-page answer (tp..tn are NA).
"""

from __future__ import annotations

import numpy as np

WRITES = "writes"


def regions_to_pages(regions: np.ndarray, npages: int) -> np.ndarray:
    """bool[npages] from a ``region_dtype`` array: pages of regions with nr_accesses > 0."""
    hot = regions[regions["nr_accesses"] > 0]
    first = np.clip(hot["start"], 0, npages)
    last = np.clip(hot["end"], 0, npages)
    depth = np.cumsum(np.bincount(first, minlength=npages + 1) - np.bincount(last, minlength=npages + 1))
    return depth[:npages] > 0


def _confusion(reported: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    tp = int(np.count_nonzero(reported & truth))
    fp = int(np.count_nonzero(reported)) - tp
    fn = int(np.count_nonzero(truth)) - tp
    return tp, fp, fn, truth.size - tp - fp - fn


def score(observation, truth, sees: str, npages: int) -> dict:
    """One results row's accuracy columns for *observation* against *truth* (a ``workloads.Truth``)."""
    truth_any = truth.any
    matching = truth.written if sees == WRITES else truth_any
    row = {
        "truth_kind": "written" if sees == WRITES else "any",
        "truth_any": int(np.count_nonzero(truth_any)),
        "truth_read": int(np.count_nonzero(truth.read)),
        "truth_written": int(np.count_nonzero(truth.written)),
        "wss_true": int(np.count_nonzero(matching)),
    }
    pages = observation.accessed
    if pages is None and observation.regions is not None:
        pages = regions_to_pages(observation.regions, npages)
    if pages is None:  # aggregate tracker: a working-set size only
        row.update(reported=observation.wss_pages, wss_est=observation.wss_pages)
        return row
    tp, fp, fn, tn = _confusion(pages, matching)
    tp_any, fp_any, fn_any, _ = _confusion(pages, truth_any)
    row.update(reported=int(np.count_nonzero(pages)), wss_est=int(np.count_nonzero(pages)),
               tp=tp, fp=fp, fn=fn, tn=tn, tp_any=tp_any, fp_any=fp_any, fn_any=fn_any)
    if observation.read is not None:
        row["reported_read"] = int(np.count_nonzero(observation.read))
    if observation.written is not None:
        row["reported_written"] = int(np.count_nonzero(observation.written))
        row["tp_written"] = int(np.count_nonzero(observation.written & truth.written))
    return row
