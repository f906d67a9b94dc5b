"""Each pattern does what its name says."""

import math

import numpy as np
import pytest

import workloads
from workloads import WorkloadError


def make(spec, **kw):
    kw = {"npages": 1000, "page_size": 4096, "seed": 3, **kw}
    return workloads.create(spec, **kw)


def within(observed, n, p, sigmas=5):
    """observed successes out of n trials are within `sigmas` binomial sd of n*p."""
    return abs(observed - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


@pytest.mark.parametrize("threads", [1, 3])
def test_hotcold_share_of_hot_accesses(threads):
    w = make("hotcold:hot=0.1,p=0.8", accesses=50_000, threads=threads)
    reads, writes = w.counts(0)
    total = reads.astype(np.int64) + writes
    hot = w.hot_range()
    assert len(hot) == 100
    assert within(int(total[hot.start:hot.stop].sum()), 50_000, 0.8)
    assert within(int(writes.sum()), 50_000, 0.3)


def test_hotcold_hot_count_holds_the_working_set_whatever_the_size():
    touched = []
    for npages in (1_000, 64_000):
        w = make("hotcold:hot_count=64,p=1", npages=npages, accesses=5_000)
        any_ = w.truth(0).any
        assert len(w.hot_range()) == 64 and not any_[64:].any()
        touched.append(int(any_.sum()))
    assert touched[0] == touched[1] == 64  # 5,000 accesses over 64 pages touch them all
    with pytest.raises(WorkloadError, match="hot_count must be in"):
        make("hotcold:hot_count=1000")


def test_uniform_write_ratio_and_spread():
    reads, writes = make("uniform", accesses=50_000, write_ratio=0.25).counts(4)
    assert within(int(writes.sum()), 50_000, 0.25)
    assert (reads + writes > 0).sum() == 1000          # 50 accesses per page on average


@pytest.mark.parametrize("threads", [1, 3])
def test_scan_touches_every_page(threads):
    w = make("scan", accesses=1000, threads=threads)
    assert w.truth(0).any.all()
    reads, writes = w.counts(0)
    assert ((reads + writes) == 1).all()               # exactly once each


def test_scan_continues_across_intervals():
    w = make("scan", accesses=300)
    touched = [np.flatnonzero(w.truth(i).any) for i in range(4)]
    assert list(touched[0]) == list(range(0, 300))
    assert list(touched[3]) == list(range(0, 200)) + list(range(900, 1000))


@pytest.mark.parametrize("threads", [1, 3])
def test_stride_touches_only_its_residue(threads):
    w = make("stride:stride=16,start=5", accesses=500, threads=threads)
    pages = np.flatnonzero(w.truth(0).any)
    assert (pages % 16 == 5).all()
    assert len(pages) == len(range(5, 1000, 16))       # 500 accesses wrap the 63 positions


def test_phase_hot_set_moves_every_every_intervals():
    w = make("phase:hot=0.1,every=3,p=0.9", accesses=20_000)
    ranges = [w.hot_range(i) for i in range(12)]
    for epoch in range(4):
        assert len(set(ranges[3 * epoch:3 * epoch + 3])) == 1
    for a, b in zip(ranges[0:9:3], ranges[3:12:3]):
        assert set(a).isdisjoint(b)                    # consecutive hot sets never overlap
    for i in (0, 4):
        reads, writes = w.counts(i)
        total = reads.astype(np.int64) + writes
        hot = ranges[i]
        assert within(int(total[hot.start:hot.stop].sum()), 20_000, 0.9)


def test_phase_hot_set_depends_on_seed():
    a = [make("phase", seed=1).hot_range(i) for i in range(0, 40, 2)]
    b = [make("phase", seed=2).hot_range(i) for i in range(0, 40, 2)]
    assert a != b


def test_zipf_larger_s_touches_fewer_pages():
    distinct = [make(f"zipf:s={s}", accesses=5000).truth(0).any.sum() for s in (0.5, 1.0, 1.5)]
    assert distinct[0] > distinct[1] > distinct[2]


def test_zipf_rank_order():
    reads, writes = make("zipf:s=1.2", accesses=50_000).counts(0)
    total = reads.astype(np.int64) + writes
    assert total[0] == total.max()
    assert total[:10].sum() > total[500:].sum()


def test_zipf_scatter_spreads_the_hot_pages():
    w = make("zipf:s=1.2,scatter=1", accesses=50_000)
    reads, writes = w.counts(0)
    total = reads.astype(np.int64) + writes
    hottest = int(w.rank_to_page()[0])
    assert total[hottest] == total.max()
    assert sorted(w.rank_to_page()) == list(range(1000))
    assert (w.rank_to_page() != make("zipf:scatter=1", seed=4).rank_to_page()).any()


# ---- masim ---------------------------------------------------------------------------------

def test_masim_default_phases():
    w = make("masim", accesses=20_000)
    regions = w.regions()
    assert list(regions) == ["a", "b", "c"] and len(regions["a"]) == 300
    assert [w.phase_of(i) for i in range(6)] == [0, 0, 1, 1, 0, 0]
    share = {}
    for i in (0, 2):
        reads, writes = w.counts(i)
        total = reads.astype(np.int64) + writes
        share[i] = {n: total[r.start:r.stop].sum() / 20_000 for n, r in regions.items()}
    assert share[0]["a"] > 0.85 and share[2]["b"] > 0.85
    assert share[0]["b"] < 0.1 and share[2]["a"] < 0.1


def test_masim_respects_modes():
    w = make("masim:config=example", accesses=20_000, write_ratio=0.5)
    regions = w.regions()
    for i in range(7):                                 # one full cycle of the example
        t = w.truth(i)
        for name in ("index", "archive"):              # ro everywhere
            assert not t.written[regions[name].start:regions[name].stop].any()
        log = regions["log"]                           # wo when used
        assert not t.read[log.start:log.stop].any()
    assert w.truth(6).written.sum() == 0               # the backup phase only reads


def write_config(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return f"masim:config={path}"


def test_masim_config_file_and_sizes(tmp_path):
    spec = write_config(tmp_path, """
[regions]
x = "1M"        # 256 pages
y = 0.25        # 250 pages
z = "10%"       # 100 pages
[[phase]]
intervals = 1
x = { weight = 1, mode = "wo" }
z = 3
""")
    w = make(spec, accesses=10_000)
    assert {n: (r.start, len(r)) for n, r in w.regions().items()} == \
        {"x": (0, 256), "y": (256, 250), "z": (506, 100)}
    t = w.truth(0)
    assert not t.any[256:506].any() and not t.any[606:].any()
    assert not t.read[:256].any()
    assert w.params()["regions"]["z"] == [506, 100]
    assert w.params()["phases"][0]["access"][0] == {"region": "x", "weight": 1.0, "mode": "wo"}


@pytest.mark.parametrize("text, message", [
    ("[regions]\na='10%'\n", "needs at least one [[phase]]"),
    ("[[phase]]\nintervals=1\n", "needs a [regions] table"),
    ("[regions]\na='90%'\nb='20%'\n[[phase]]\nintervals=1\na=1\n", "regions need 1100 pages"),
    ("[regions]\na='1K'\n[[phase]]\nintervals=1\na=1\n", "region 'a' ('1K') is smaller than one page"),
    ("[regions]\na='lots'\n[[phase]]\nintervals=1\na=1\n", "region 'a' size 'lots' is not understood"),
    ("[regions]\na='10%'\n[[phase]]\nintervals=0\na=1\n", "phase 1: intervals must be an integer >= 1"),
    ("[regions]\na='10%'\n[[phase]]\nintervals=1\nb=1\n", "phase 1: unknown region 'b'"),
    ("[regions]\na='10%'\n[[phase]]\nintervals=1\na={weight=1,mode='rx'}\n", "mode must be ro, wo or rw"),
    ("[regions]\na='10%'\n[[phase]]\nintervals=1\na=0\n", "give at least one region a positive weight"),
    ("[regions]\na='10%'\n[[phase]]\nintervals=1\na=-1\n", "weight must be a number >= 0"),
    ("[regions]\na='10%'\n[[phase]]\nintervals=1\na={weight=1,w=2}\n", "unknown key(s) w"),
    ("[regions]\na='10%'\n[[phase]]\nintervals=1\na={weight=1,stride='far'}\n", "stride must be bytes"),
    ("[regions]\na='10%'\n[oops]\n[[phase]]\nintervals=1\na=1\n", "unknown section(s) oops"),
    ("[regions\n", "cannot read"),
])
def test_masim_bad_configs(tmp_path, text, message):
    with pytest.raises(WorkloadError) as err:
        make(write_config(tmp_path, text))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("masim: ")


def test_masim_docstring_example_is_valid(tmp_path):
    import textwrap

    from workloads import masim
    doc = masim.__doc__
    block = doc[doc.index("Config (TOML)::") + len("Config (TOML)::"):doc.index("A region a phase")]
    w = make(write_config(tmp_path, textwrap.dedent(block)), npages=20_000)
    assert list(w.regions()) == ["a", "b", "c"] and len(w.regions()["c"]) == 4096
