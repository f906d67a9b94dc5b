"""Does a size sweep's fitted cost per GiB match the micro-benchmarks of the primitive behind it?

A tracker phase (``arm`` or ``collect`` of a lockstep row) runs one kernel primitive over the
whole arena. Its cost has up to three parts: a walk of the arena's page tables (per GiB of
memory), work for each page in the *state* the primitive acts on (written and to re-protect,
present and to unmap, young and to clear), and, for some primitives, work for each 2 MiB
page-table *block* holding such pages (a TLB flush per PMD range that PAGEMAP_SCAN
re-protected; a PTE table that MADV_DONTNEED frees once empty (PT_RECLAIM, Linux 6.14), so
that the next zap or shmem scan skips it). So each phase is fitted over the sweep's intervals as

    cost_ms = c0 + a * memory_GiB + b * state_GiB [+ c * blocks_GiB]

with state_GiB = pages in state x 4 KiB and blocks_GiB = 2 MiB blocks holding one x 2 MiB
(each tracker's ``cost_model`` says which state, per phase, and why; ``MATCHES`` gathers them). A phase whose first interval meets another
kernel state than the later ones is two fits: the first MADV_DONTNEED of a just-populated shmem
arena also activates every folio on the LRU (pgactivate: one per page; measured 40 against
14 ms/GiB for the zaps after it), so the zap arms' interval 0 is predicted by the fresh-arena
case and their later intervals by the steady 0/1/100 % cases. ``hotbench micro`` measures the same
primitive per GiB of arena with 0 %, 1 % (scattered: a few pages in every block) and 100 % of
its pages in that state, so it predicts every slope: a = value at 0 %; without a block term,
b = (value at 100 % − value at 0 %); with one, b = (v100 − v1) / 0.99 and c = v1 − v0 − 0.01 b.
Comparing slopes rather than per-GiB totals removes what made a direct comparison fail (the
sweep touches 24 % of a 256 MiB arena but 2 % of 16 GiB; shmem read fault-around makes up to
16x more pages present than were touched). Runs, blocks and the mprotect tracker's state need
the page bitmaps of ``hotbench run --pages``; without them those phases are not fitted.

Micro measured at one arena size (1 GiB by default) gives that arena's time per GiB: its
call's fixed cost divided by the arena (clear_refs and smaps also walk the rest of the
process) and the cache regime of that size — page tables and ``struct page``s of 1 GiB stay
in a large last-level cache across pyperf's back-to-back calls, those of 16 GiB do not. A
sweep's slope has neither: its fixed cost goes to c0, and its slope is set by its largest
arenas. So measure the micro cases at the sweep's sizes (``hotbench micro --size
256M,1G,4G,16G``): each case's prediction is then the slope of its time over those sizes, the
same quantity (``micro_per_gib``). What stays, on purpose not modelled away: the tracker
phase may do user-space work the primitive lacks (a bitmap of the arena, a copy of a fault
record), and its caches are those left by the workload, not by the previous call. Those show
as a ratio off 1.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from analysis.scaling import GIB, full_rank, ols
from bench import trackers
from bench.trackers import ALL, BEFORE, FIRST, LATER, REPORTED, RUNS, CostMatch

__all__ = ["Match", "MATCHES", "matches", "ALL", "FIRST", "LATER", "REPORTED", "BEFORE", "RUNS", "WITHIN",
           "micro_comparison", "micro_ms_per_gib", "micro_per_gib", "page_shapes", "sizes_text"]

WITHIN = 1.3  # a fitted slope agrees when fitted / predicted is within [1/1.3, 1.3]
NEGLIGIBLE = 0.1  # a prediction matters when its term reaches 10 % of the largest cost fitted
PAGE = 4096
BLOCK_PAGES = 512  # base pages per 2 MiB page-table block (one PTE table, one PMD entry)

# A tracker phase's cost model is a fact of the tracker (Tracker.cost_model): what state_GiB
# counts (REPORTED, BEFORE, RUNS), which rows are fitted (ALL, FIRST, LATER) and why.
Match = CostMatch


def matches() -> tuple[Match, ...]:
    """One row per tracker phase with a cost model, from the tracker registry; a phase missing
    there (or with no micro case) gets no prediction."""
    return trackers.cost_models()


def __getattr__(name: str):
    if name == "MATCHES":  # the registry's, read when first asked for
        return matches()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------- micro values

def micro_ms_per_gib(micro) -> dict[str, float]:
    """{case: ms per GiB} from a pyperf JSON path or a frame (benchmark, value in s[, arena_bytes])."""
    return {case: value for case, (value, _) in micro_per_gib(micro).items()}


def micro_per_gib(micro) -> dict[str, tuple[float, tuple[int, ...]]]:
    """{case: (ms per GiB, the arena sizes it comes from)}.

    A case measured at one size (``hotbench micro --size 1G``) gives its median there: one
    arena's time divided by its size, fixed cost included. A case measured at several sizes
    (``--size 256M,16G``: benchmarks ``CASE@SIZE``) gives the slope of its total time against
    the size, fitted through the median at each size like a sweep's phase cost: the marginal
    cost per GiB, which is what a sweep's slope is.
    """
    frame = _micro_frame(micro)
    if frame is None:
        return {}
    frame = frame.assign(case=frame["benchmark"].str.split("@").str[0], ms=frame["value"] * 1e3,
                         arena=frame["arena_bytes"] if "arena_bytes" in frame else np.nan)
    out = {}
    for case, rows in frame.groupby("case", sort=False):
        medians = rows.groupby("arena", dropna=False)["ms"].median()  # older files record no size: NaN
        sizes = tuple(int(a) for a in medians.index if a == a)
        if len(sizes) < 2 or len(sizes) < len(medians):
            out[case] = (float(rows["ms"].median()), sizes)
            continue
        gib = medians.index.to_numpy(float) / GIB
        fit = ols(medians.to_numpy() * gib, {"c0": np.ones_like(gib), "slope": gib})
        out[case] = (fit["slope"], sizes)
    return out


def _micro_frame(micro):
    """A frame (benchmark, value, arena_bytes) from a pyperf JSON path, or the frame itself."""
    import pandas as pd

    if isinstance(micro, (str, Path)):
        import pyperf

        suite = pyperf.BenchmarkSuite.load(str(micro))
        return pd.DataFrame([{"benchmark": b.get_name(), "value": v,
                              "arena_bytes": b.get_metadata().get("hotbench_arena_bytes", np.nan)}
                             for b in suite.get_benchmarks() for v in b.get_values()])
    return micro if micro is not None and len(micro) else None


def sizes_text(sizes) -> str:
    """How a micro value was measured: 'slope 256M-16G (4 sizes)', 'at 1G', or '' when unknown."""
    from bench.arena import size_token

    sizes = sorted(s for s in sizes if s == s)
    if not sizes:
        return ""
    if len(sizes) == 1:
        return f"at {size_token(sizes[0])}"
    return f"slope {size_token(sizes[0])}-{size_token(sizes[-1])} ({len(sizes)} sizes)"


def _share(case: str) -> float:
    """The share of pages in state a case name states (``.../100pct/4k`` -> 1.0)."""
    return int(re.search(r"/(\d+)pct/", case).group(1)) / 100


def _predicted(match: Match, ms: dict[str, float]) -> dict[str, float]:
    """{term: predicted ms per GiB}; NaN where a case is unmapped or was not measured.

    With a block term the 1 % case has state in every block (a 2 MiB block of 512 pages misses
    all of a random 1 % with probability 0.99^512 = 0.6 %), so it counts as blocks share 1.
    """
    v = {name: ms.get(case, float("nan")) if case else float("nan")
         for name, case in (("memory", match.memory), ("state", match.state), ("blocks", match.blocks))}
    out = {"memory": v["memory"]}
    if match.state and match.blocks:
        low = _share(match.blocks)
        out["state"] = (v["state"] - v["blocks"]) / (_share(match.state) - low)
        out["blocks"] = v["blocks"] - v["memory"] - low * out["state"]
    elif match.state:
        out["state"] = (v["state"] - v["memory"]) / (_share(match.state) - _share(match.memory))
    return out


# ---------------------------------------------------------------- sweep rows

_CELL = ["label", "run_id", "tracker", "workload_spec", "workload_params", "backing", "size_bytes", "repeat"]
_PAGES_KEY = ["run_id", "tracker", "workload_spec", "backing", "size_bytes", "repeat", "interval"]


def _shape(blob: bytes, npages: int) -> tuple[int, int, int]:
    """(pages set, runs of set pages, 2 MiB blocks holding a set page) of one packed bitmap."""
    bits = np.unpackbits(np.frombuffer(blob, np.uint8), count=npages, bitorder="little").astype(np.int8)
    runs = int(np.count_nonzero(np.diff(bits, prepend=np.int8(0)) == 1))
    blocks = int(np.count_nonzero(np.add.reduceat(bits, np.arange(0, npages, BLOCK_PAGES))))
    return int(bits.sum()), runs, blocks


def _by_cell(frame) -> bool:
    """Rows written since results carry the cell's number (``cell``): that, not a key, joins them."""
    return "cell" in frame and frame["cell"].notna().all()


def page_shapes(pages):
    """Per interval of a pages frame (``hotbench run --pages``): reported pages, their runs and blocks.

    Blocks count from the arena's start (2 MiB aligned where the kernel aligned the mapping).
    Bitmaps join their samples row by (run_id, cell, interval). Older results have no ``cell``
    and do not name the workload's parameters, so there the count of reported pages joins
    each bitmap to its row too (cells differing only in, say, accesses report different
    counts) and a key that still matches two bitmaps is dropped.
    """
    import pandas as pd

    if pages is None or not len(pages):
        return None
    rows = pages.dropna(subset=["reported"])
    shapes = pd.DataFrame([_shape(blob, int(n)) for blob, n in zip(rows["reported"], rows["npages"])],
                          columns=["reported", "runs", "blocks"], index=rows.index)
    out = pd.concat([rows[_PAGES_KEY + (["cell"] if _by_cell(rows) else [])], shapes], axis=1)
    if _by_cell(out):
        return out.reset_index(drop=True)
    return out.drop_duplicates(_PAGES_KEY + ["reported"], keep=False).reset_index(drop=True)


def _with_shapes(samples, pages):
    """*samples* with ``runs`` and ``blocks`` columns (NaN where no bitmap matches its row)."""
    shapes = page_shapes(pages)
    if shapes is None or not set(_PAGES_KEY) <= set(samples):
        return samples
    keys = ["run_id", "cell", "interval"] if _by_cell(shapes) and _by_cell(samples) else _PAGES_KEY + ["reported"]
    found = dict(zip(shapes[keys].itertuples(index=False, name=None), zip(shapes["runs"], shapes["blocks"])))
    matched = [found.get(key, (np.nan, np.nan)) for key in samples[keys].itertuples(index=False, name=None)]
    return samples.assign(runs=[m[0] for m in matched], blocks=[m[1] for m in matched])


def _before(rows, column: str, at_start):
    """*column* of the previous interval of the same cell; *at_start* at interval 0."""
    cell = [c for c in _CELL if c in rows]
    ordered = rows.sort_values(cell + ["interval"])
    before = ordered.groupby(cell, dropna=False)[column].shift(1).astype(float)
    consecutive = ordered.groupby(cell, dropna=False)["interval"].diff() == 1
    before = before.where(consecutive)  # a missing (failed) interval leaves the state unknown
    return before.where(ordered["interval"] != 0, at_start.loc[ordered.index].astype(float))


def _state(rows, match: Match) -> dict:
    """{state_gib, blocks_gib} columns of a match's rows (only the terms it has)."""
    nan = rows["npages"] * np.nan  # no bitmaps: runs and blocks unknown
    column = "runs" if match.quantity == RUNS else "reported"
    pages = rows[column] if column in rows else nan
    blocks = rows["blocks"] if "blocks" in rows else nan
    if match.quantity == BEFORE:  # every page and block at interval 0 (unknown too without bitmaps)
        pages = _before(rows.assign(_x=pages), "_x", rows["npages"])
        blocks = _before(rows.assign(_x=blocks), "_x", -(-rows["npages"] // BLOCK_PAGES) + 0 * blocks)
    out = {"state_gib": pages.astype(float) * PAGE / GIB}
    if match.blocks:
        out["blocks_gib"] = blocks.astype(float) * (BLOCK_PAGES * PAGE) / GIB
    return out


def _rows(samples, match: Match, clock: str):
    """The rows one match fits: cost_ms, memory_gib and its state columns; None when it has none."""
    ok = samples[(samples["tracker"] == match.tracker) & (samples["backing"] == match.backing)
                 & (samples["status"] == "ok")]
    if not len(ok):
        return None
    cost = f"{match.phase}_cpu_ns" if clock == "cpu" else f"{match.phase}_ns"
    out = ok.assign(cost_ms=ok[cost].astype(float) / 1e6, memory_gib=ok["size_bytes"] / GIB,
                    **(_state(ok, match) if match.quantity else {}))
    if match.rows == FIRST:
        out = out[out["interval"] == 0]
    elif match.rows == LATER:
        out = out[out["interval"] > 0]
    return out.dropna(subset=["cost_ms"] + [f"{t}_gib" for t in _terms(match)[1:]])


def _terms(match: Match) -> list[str]:
    return ["memory"] + (["state"] if match.quantity else []) + (["blocks"] if match.blocks else [])


def _fit(rows, terms: list[str]) -> dict | None:
    """OLS of cost_ms on c0 and the *terms* (``<term>_gib`` columns); None when not identifiable."""
    if rows["memory_gib"].nunique() < 2 or len(rows) <= len(terms) + 1:
        return None
    columns = {"c0": np.ones(len(rows)), **{t: rows[f"{t}_gib"].to_numpy(float) for t in terms}}
    if not full_rank(*columns.values()):
        return None
    return ols(rows["cost_ms"].to_numpy(float), columns)


# ---------------------------------------------------------------- the table

def _judge(fit: dict, name: str, predicted: float, reach: float, top_cost: float) -> tuple[str, float]:
    """(verdict, ratio) of one coefficient; judged when significant or predicted to matter."""
    coef, se = fit[name], fit[f"{name}_se"]
    if not np.isfinite(predicted):
        return "not judged: its micro case is not in the micro results", float("nan")
    ratio = coef / predicted if predicted > 0 else float("nan")
    significant = abs(coef) >= 2 * se
    matters = predicted > 0 and predicted * reach >= NEGLIGIBLE * top_cost
    if not (significant or matters):
        return "not judged: not significant, micro predicts < 10 % of the cost", ratio
    why = "significant" if significant else "not significant, but predicted to matter"
    if not np.isfinite(ratio):
        return f"outside {WITHIN}x ({why}; micro predicts no cost)", ratio
    inside = 1 / WITHIN <= ratio <= WITHIN
    return f"{'within' if inside else 'outside'} {WITHIN}x ({why})", ratio


def _unfitted(match: Match, rows) -> str:
    if not len(rows) and (match.quantity == RUNS or match.blocks):
        return "not fitted: needs the page bitmaps of 'hotbench run --pages' (runs, blocks)"
    return "not fitted: fewer than 2 sizes, or terms not separable in these rows"


def _records(match: Match, rows, values: dict[str, tuple[float, tuple]], label) -> list[dict]:
    ms = {case: value for case, (value, _) in values.items()}
    cases = [c for c in (match.memory, match.blocks, match.state) if c]
    base = {"label": label, "tracker": match.tracker, "phase": match.phase, "backing": match.backing,
            "n": len(rows), "why": match.why,
            "micro_at": sizes_text({s for c in cases for s in values.get(c, (0, ()))[1]})}
    fit = _fit(rows, _terms(match))
    if fit is None:
        return [{**base, "coefficient": "-", "verdict": _unfitted(match, rows)}]
    predicted, top, out = _predicted(match, ms), float(rows["cost_ms"].max()), []
    for term in _terms(match):
        case = getattr(match, term)  # the Match field naming the micro case that predicts this term
        verdict, ratio = _judge(fit, term, predicted[term], float(rows[f"{term}_gib"].max()), top) if case \
            else ("not judged: no micro case maps to it", float("nan"))
        out.append({**base, "coefficient": term, "state": match.quantity if term != "memory" else "",
                    "rows": match.rows, "fit_ms_per_gib": fit[term], "fit_se": fit[f"{term}_se"],
                    "micro_ms_per_gib": predicted[term], "ratio": ratio, "verdict": verdict, "r2": fit["r2"],
                    "micro_cases": ", ".join(c for c in (match.memory, match.blocks, match.state) if c)})
    return out


def micro_comparison(samples, micro, clock: str = "cpu", matches=None, pages=None):
    """Per tracker phase and coefficient: fitted ms/GiB ± se, micro-predicted ms/GiB, ratio, verdict.

    *samples*: lockstep rows of a sweep over at least two sizes; *micro*: a pyperf JSON path,
    or ``analysis.data``'s micro frame (rows matched by ``label`` when both have one);
    *clock*: "cpu" (``arm_cpu_ns``/``collect_cpu_ns``, the tracker thread's CPU time: free of
    preemption) or "wall"; *pages*: the sweep's page bitmaps (``analysis.data``'s pages frame),
    needed for runs and blocks. Trackers absent from *samples* are left out.
    """
    import pandas as pd

    samples = _with_shapes(samples, pages)
    by_label = "label" in samples and not isinstance(micro, (str, Path)) and micro is not None \
        and "label" in micro
    records = []
    for label, group in (samples.groupby("label", sort=False) if "label" in samples else [(None, samples)]):
        values = micro_per_gib(micro[micro["label"] == label] if by_label else micro)
        for match in (trackers.cost_models() if matches is None else matches):
            rows = _rows(group, match, clock)
            if rows is not None:
                records += _records(match, rows, values, label)
    return pd.DataFrame(records)
