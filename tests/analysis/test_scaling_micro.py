"""The sweep-vs-micro comparison: slopes built into synthetic samples are recovered, checked
against a synthetic micro table, and a wrong mapping is caught. Numbers here are made up."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from analysis import _micro_match as mm

GIB_PAGES = (1 << 30) // 4096
SIZES_GIB = (0.0625, 0.25, 0.5, 1)
# per (tracker, phase): c0 ms, then ms per GiB of memory (a), of pages in state (b), of 2 MiB blocks holding
# them (c); b and c only where the match has those terms. Phases sharing a micro case share its value: the
# uffd-wp arm re-protects every page in every block (the collect's a + b + c).
TRUE = {("uffd-wp", "arm"): (0.05, 30.6, 0, 0), ("uffd-wp", "collect"): (0.1, 0.5, 30.0, 0.1),
        ("mprotect", "arm"): (0.02, 9.0, 0, 0), ("mprotect", "collect"): (0.2, 8.0, 600.0, 0),
        ("referenced", "arm"): (1.0, 5.0, 20.0, 0), ("referenced", "collect"): (0.5, 11.0, 4.0, 0),
        ("shmem-zap", "arm"): (0.1, 0.01, 160.0, 1.2), ("shmem-zap", "collect"): (0.05, 0.01, 2.0, 0.3),
        ("uffd-minor", "arm"): (0.1, 0.01, 160.0, 1.2), ("uffd-minor", "collect"): (0.01, 0.02, 0, 0)}
MATCHES = {(m.tracker, m.phase): m for m in mm.MATCHES if m.rows != mm.FIRST or m.tracker == "uffd-wp"}
FIRST_ZAP = {m.tracker: m for m in mm.MATCHES if m.rows == mm.FIRST and m.tracker != "uffd-wp"}
ACTIVATION = 200.0  # ms per GiB the first zap adds, activating every folio (measured: 27 on top of 14)
BACKING = {"uffd-wp": "anon", "mprotect": "anon", "referenced": "anon", "shmem-zap": "shmem", "uffd-minor": "shmem"}


def _micro(true=TRUE):
    """A micro frame (seconds per GiB) that the true slopes would produce, one value per case."""
    values = {}
    for key, (_, a, b, c) in true.items():
        match = MATCHES[key]
        for case in (match.memory, match.blocks, match.state):
            if case:
                share = mm._share(case)
                values[case] = (a + share * b + (c if share else 0)) / 1e3
        if key[0] in FIRST_ZAP and key[1] == "arm":  # every page present and fresh
            values[FIRST_ZAP[key[0]].memory] = (a + b + c + ACTIVATION) / 1e3
    return pd.DataFrame([{"benchmark": name, "value": v} for name, v in values.items()])


def _bitmap(npages, reported, rng):
    """Packed bits: *reported* pages in runs of 1-4 pages, spread over a random share of the arena."""
    run = int(rng.integers(1, 5))
    nruns = -(-reported // run)
    stride = int(rng.uniform(run + 1, max(run + 2, npages // max(nruns, 1))))
    bits = np.zeros(npages, bool)
    bits[((np.arange(nruns) * stride)[:, None] + np.arange(run)).ravel()[:reported]] = True
    blob = np.packbits(bits, bitorder="little").tobytes()
    return blob, nruns, np.count_nonzero(bits.reshape(-1, mm.BLOCK_PAGES).any(axis=1))


def _cost(true, tracker, phase, interval, size_gib, state, blocks):
    c0, a, b, c = true[(tracker, phase)]
    if tracker == "uffd-wp" and phase == "arm" and interval:  # later arms skip the primitive
        c0, a, b, c = 0.003, 0, 0, 0
    first_zap = ACTIVATION * size_gib if tracker in FIRST_ZAP and phase == "arm" and not interval else 0
    return c0 + a * size_gib + (b * state + c * blocks * mm.BLOCK_PAGES) / GIB_PAGES + first_zap


def _cell(tracker, size_gib, accesses, rng, true, pages):
    npages = int(size_gib * GIB_PAGES)
    rows, before = [], (npages, npages // mm.BLOCK_PAGES)  # the prefault left every page in state
    for interval in range(3):
        reported = int(min(npages // 4 - rng.integers(0, 500), accesses * rng.uniform(0.8, 1.2)))  # no ties
        row = dict(run_id="r", tracker=tracker, workload_spec="hotcold", workload_params=f'{{"accesses": {accesses}}}',
                   backing=BACKING[tracker], size_bytes=npages * 4096, npages=npages, repeat=0, interval=interval,
                   reported=reported, status="ok")
        blob, runs, blocks = _bitmap(npages, reported, rng)
        pages.append({k: row[k] for k in mm._PAGES_KEY} | {"npages": npages, "reported": blob})
        now = (runs if tracker == "mprotect" else reported, blocks)
        for phase, (state, nblocks) in (("arm", before), ("collect", now)):
            ms = _cost(true, tracker, phase, interval, size_gib, state, nblocks) * rng.normal(1, 0.003)
            row[f"{phase}_cpu_ns"] = row[f"{phase}_ns"] = ms * 1e6
        rows.append(row)
        before = (reported, blocks)
    return rows


def _samples(true=TRUE, seed=5):
    """(samples, pages) frames of a synthetic sweep: 4 sizes x 3 access counts x 3 intervals per tracker."""
    rng = np.random.default_rng(seed)
    pages = []
    rows = [r for tracker in BACKING for size in SIZES_GIB for accesses in (3000, 30000, 300000)
            for r in _cell(tracker, size, accesses, rng, true, pages)]
    return pd.DataFrame(rows), pd.DataFrame(pages)


# Each judged coefficient lands beyond 2 standard errors by chance about 1 time in 20 (seeds 5, 6, 7
# and 10 of 1-11 have one such); what is under test is the model and the verdicts, so the seed is
# one where none does.
SWEEP = _samples(seed=1)


def _table(sweep, micro, first_zap=False, **kw):
    """The comparison indexed by (tracker, phase, coefficient): the zap arms' later intervals, or
    with *first_zap* their first (the two fits of one phase)."""
    samples, pages = sweep
    table = mm.micro_comparison(samples, micro, pages=pages, **kw)
    is_first_zap = (table.get("rows") == mm.FIRST) & (table["tracker"] != "uffd-wp")
    table = table[is_first_zap if first_zap else ~is_first_zap]
    return table.set_index(["tracker", "phase", "coefficient"]).sort_index()


def test_slopes_are_recovered_and_agree_with_their_micro_cases():
    table = _table(SWEEP, _micro())
    for (tracker, phase), (_, *slopes) in TRUE.items():
        match = MATCHES[(tracker, phase)]
        for term, value in zip(("memory", "state", "blocks"), slopes):
            if term not in mm._terms(match):
                assert (tracker, phase, term) not in table.index
                continue
            row = table.loc[(tracker, phase, term)]
            error = abs(row["fit_ms_per_gib"] - value)
            assert error <= max(4 * row["fit_se"], 0.02 * value), (tracker, phase, term, row["fit_ms_per_gib"])
            if getattr(match, term):
                assert row["micro_ms_per_gib"] == pytest.approx(value, rel=1e-6, abs=1e-9), (tracker, phase, term)
    judged = table[~table["verdict"].str.startswith("not judged")]
    assert judged["verdict"].str.startswith("within").all(), judged["verdict"].to_dict()
    assert {"state", "blocks"} <= set(judged.loc["shmem-zap"].index.get_level_values("coefficient"))
    assert table.loc[("uffd-minor", "collect", "memory"), "verdict"] == "not judged: no micro case maps to it"


def test_a_wrong_mapping_fails():
    """Predicting the referenced arm (clear_refs) from the smaps read must not pass."""
    wrong = dataclasses.replace(MATCHES[("referenced", "arm")], memory="scan/smaps/read/0pct/4k",
                                state="scan/smaps/read/100pct/4k")
    table = _table(SWEEP, _micro(), matches=(wrong,))
    verdicts = table.loc[("referenced", "arm"), "verdict"]
    assert verdicts.str.startswith("outside").any(), verdicts.to_dict()


@pytest.mark.parametrize("change", [dict(quantity=mm.REPORTED), dict(blocks=None)],
                         ids=["state-at-arm-time", "no-block-term"])
def test_a_wrong_model_of_the_zap_fails(change):
    """The zap works on what was present before it (not what the next collect finds), and on whole blocks."""
    wrong = dataclasses.replace(MATCHES[("shmem-zap", "arm")], **change)
    table = _table(SWEEP, _micro(), matches=(wrong,))
    assert table.loc[("shmem-zap", "arm"), "verdict"].str.startswith("outside").any()


def test_an_arm_finds_what_the_previous_collect_reported():
    samples, pages = SWEEP
    every = dataclasses.replace(MATCHES[("shmem-zap", "arm")], rows=mm.ALL)  # interval 0 too
    rows = mm._rows(mm._with_shapes(samples, pages), every, "cpu")
    first = rows.sort_values(["size_bytes", "workload_params", "interval"]).iloc[:3]
    cell = samples.loc[first.index].sort_values("interval")
    keys = mm._PAGES_KEY + ["reported"]
    shapes = mm.page_shapes(pages).set_index(keys).loc[[tuple(r) for r in cell[keys].to_numpy()]]
    assert list(first["state_gib"] * GIB_PAGES) == [cell["npages"].iloc[0], *cell["reported"].iloc[:2]]
    assert list(first["blocks_gib"] * GIB_PAGES / mm.BLOCK_PAGES) == [cell["npages"].iloc[0] / mm.BLOCK_PAGES,
                                                                     *shapes["blocks"].iloc[:2]]


def test_a_failed_interval_leaves_the_next_arm_out():
    samples = SWEEP[0].copy()
    failed = samples.index[(samples["tracker"] == "referenced") & (samples["interval"] == 1)]
    samples.loc[failed, "status"] = "error: boom"
    rows = mm._rows(samples, MATCHES[("referenced", "arm")], "cpu")
    assert set(rows["interval"]) == {0}  # interval 1 failed, interval 2's state is unknown


def test_runs_and_blocks_come_from_the_page_bitmaps():
    samples, pages = SWEEP
    shapes = mm.page_shapes(pages)
    assert len(shapes) == len(samples)
    assert (shapes["runs"] <= shapes["reported"]).all() and (shapes["runs"] < shapes["reported"]).any()
    assert (shapes["blocks"] <= shapes["runs"]).all()
    table = mm.micro_comparison(samples, _micro()).set_index(["tracker", "phase"])
    needs = "not fitted: needs the page bitmaps of 'hotbench run --pages' (runs, blocks)"
    for key in (("mprotect", "collect"), ("uffd-wp", "collect"), ("shmem-zap", "arm")):
        assert needs in set(table.loc[[key], "verdict"]), key  # the zap's first arm needs none: fitted
    assert table.loc[("referenced", "arm"), "verdict"].str.startswith("within").all()
    # fitted against opened pages instead of their runs, the per-run micro cost does not match
    wrong = dataclasses.replace(MATCHES[("mprotect", "collect")], quantity=mm.REPORTED)
    table = _table(SWEEP, _micro(), matches=(wrong,))
    assert table.loc[("mprotect", "collect"), "verdict"].str.startswith("outside").any()


def test_missing_micro_cases_and_single_size_are_not_judged():
    micro = _micro()
    micro = micro[~micro["benchmark"].str.startswith("arm/clear_refs_1/")]
    table = _table(SWEEP, micro)
    assert table.loc[("referenced", "arm"), "verdict"].str.contains("not in the micro results").all()
    samples, pages = SWEEP
    table = _table((samples[samples["size_bytes"] == samples["size_bytes"].max()], pages), _micro())
    assert table["verdict"].str.startswith("not fitted").all()


def test_micro_from_a_pyperf_file(tmp_path):
    import pyperf

    frame = _micro()
    benches = [pyperf.Benchmark([pyperf.Run([v] * 3, metadata={"name": name, "unit": "second", "loops": 1},
                                            collect_metadata=False)]) for name, v in zip(frame["benchmark"],
                                                                                          frame["value"])]
    path = tmp_path / "micro.json"
    pyperf.BenchmarkSuite(benches).dump(str(path))
    assert mm.micro_ms_per_gib(path) == pytest.approx(mm.micro_ms_per_gib(frame))
    table = _table(SWEEP, path)
    assert table.loc[("uffd-wp", "collect", "state"), "micro_ms_per_gib"] == pytest.approx(30.0)


def test_report_section():
    from analysis import report
    from analysis.data import Data

    samples, pages = SWEEP
    data = Data(runs=[], labels=["k"], samples=samples.assign(label="k"), concurrent=pd.DataFrame(),
                micro=_micro().assign(label="k"), pages=pages.assign(label="k"))
    table = report.micro_match_table(data)
    assert table.name == "micro_match" and table.headers[:3] == ["tracker", "phase", "slope"]
    row = next(r for r in table.rows if r[:3] == ["uffd-wp", "collect", "state (reported)"])
    assert row[4] == "30.0" and row[-1] == "within 1.3x (significant)"
    assert report.micro_match_table(Data(runs=[], labels=["k"], samples=data.samples, concurrent=pd.DataFrame())) is None


def _micro_at(sizes_gib, fixed_ms, true=TRUE):
    """The micro frame of 'hotbench micro --size LIST': each case at every size (CASE@SIZE, arena_bytes),
    its time per GiB being (fixed_ms + per-GiB cost x size) / size."""
    frame = _micro(true)
    rows = []
    for name, per_gib in zip(frame["benchmark"], frame["value"] * 1e3):
        for gib in sizes_gib:
            arena = int(gib * (1 << 30))
            benchmark = name if len(sizes_gib) == 1 else f"{name}@{arena >> 20}M"
            rows.append({"benchmark": benchmark, "arena_bytes": arena, "value": (fixed_ms / gib + per_gib) / 1e3})
    return pd.DataFrame(rows)


def test_micro_at_several_sizes_gives_the_marginal_cost_per_gib():
    """A call's fixed cost inflates one small arena's time per GiB; fitted across sizes it drops out,
    as it does from a sweep's slope. Without that, a fixed cost of 1 ms at 64 MiB fails the match."""
    single = mm.micro_per_gib(_micro_at([0.0625], fixed_ms=1.0))
    several = mm.micro_per_gib(_micro_at([0.0625, 1, 16], fixed_ms=1.0))
    exact = mm.micro_ms_per_gib(_micro())
    for case, value in exact.items():
        assert several[case][0] == pytest.approx(value, rel=1e-9, abs=1e-9), case
        assert several[case][1] == (64 << 20, 1 << 30, 16 << 30)
        assert single[case][0] == pytest.approx(value + 16.0)
    assert mm.sizes_text(several[case][1]) == "slope 64M-16G (3 sizes)"
    assert mm.sizes_text(single[case][1]) == "at 64M" and mm.sizes_text(()) == ""
    judged = _table(SWEEP, _micro_at([0.0625, 1, 16], fixed_ms=1.0))
    judged = judged[~judged["verdict"].str.startswith("not judged")]
    assert judged["verdict"].str.startswith("within").all(), judged["verdict"].to_dict()
    assert (judged["micro_at"] == "slope 64M-16G (3 sizes)").all()
    inflated = _table(SWEEP, _micro_at([0.0625], fixed_ms=1.0))
    assert inflated.loc[("mprotect", "arm", "memory"), "verdict"].startswith("outside")


def _answer(micro):
    from analysis import answers
    from analysis.data import Data, RunInfo

    samples, pages = SWEEP
    data = Data(runs=[RunInfo("r", "k", {"environment": {"kernel_release": "6.18", "accel": "native"}})],
                labels=["k"], samples=samples.assign(label="k"), concurrent=pd.DataFrame(),
                micro=micro.assign(label="k"), pages=pages.assign(label="k"))
    return answers.answer("sweep-vs-micro", answers.Context(data, quick=False)).paragraph


def test_the_sweep_vs_micro_answer_counts_the_slopes_that_agree():
    agree = _answer(_micro_at([0.0625, 1], fixed_ms=1.0))
    assert "kernel 6.18, native" in agree and "micro slope 64M-1G (2 sizes)" in agree
    assert "mprotect arm 9 vs 9 (1.00×)" in agree
    judged = mm.micro_comparison(SWEEP[0], _micro_at([0.0625, 1], fixed_ms=1.0), pages=SWEEP[1])
    judged = judged[~judged["verdict"].str.startswith(("not judged", "not fitted"))]
    memory = int((judged["coefficient"] == "memory").sum())
    assert f"{memory} of {memory} within 1.3×" in agree
    single = _answer(_micro_at([0.0625], fixed_ms=1.0))
    assert f"{memory} of {memory} within" not in single and "its fixed cost included" in single


def test_bitmaps_join_their_rows_by_cell_number_when_results_have_it():
    """Two cells that differ only in a workload parameter and report the same count: the old key
    (tracker, size, interval, reported...) cannot tell their bitmaps apart, the cell number can."""
    samples, pages = SWEEP
    one = samples[(samples["tracker"] == "mprotect") & (samples["size_bytes"] == samples["size_bytes"].min())]
    cells = one.groupby("workload_params").ngroup().to_numpy()
    rows = one.assign(cell=cells, reported=int(one["reported"].iloc[0]))
    bitmaps = pages.loc[one.index].assign(cell=cells)  # _samples appends one bitmap per row, in order
    expect = mm.page_shapes(bitmaps).set_index(["cell", "interval"])["runs"]
    expect = [expect[(c, i)] for c, i in zip(rows["cell"], rows["interval"])]
    by_key = mm._with_shapes(rows.drop(columns="cell"), bitmaps.drop(columns="cell"))["runs"]
    assert by_key.tolist() != expect  # rows of the other cells get a wrong bitmap, or none
    assert mm._with_shapes(rows, bitmaps)["runs"].tolist() == expect


def test_the_first_zap_is_predicted_by_the_fresh_arena_case():
    """The first arm zaps a just-populated arena and activates every folio: its cost per GiB is the
    fresh case's, not the steady 100 % case's (which would miss the activation)."""
    first = _table(SWEEP, _micro(), first_zap=True)
    assert set(first.index.get_level_values("tracker")) == set(FIRST_ZAP) & set(BACKING)
    for tracker in set(FIRST_ZAP) & set(BACKING):
        row = first.loc[(tracker, "arm", "memory")]
        _, a, b, c = TRUE[(tracker, "arm")]
        assert row["micro_ms_per_gib"] == pytest.approx(a + b + c + ACTIVATION)
        assert row["verdict"].startswith("within"), (tracker, row["verdict"])
    steady = [dataclasses.replace(m, memory=MATCHES[(m.tracker, "arm")].state) for m in FIRST_ZAP.values()
              if m.tracker in BACKING]
    wrong = _table(SWEEP, _micro(), first_zap=True, matches=steady)
    assert wrong["verdict"].str.startswith("outside").all()
    later = _table(SWEEP, _micro())  # the activation stays out of the later intervals' fit
    assert later.loc[("shmem-zap", "arm", "state"), "verdict"].startswith("within")
