"""masim:config=FILE.cfg: DAMON masim's own format, read (workloads/_masim_cfg.py) and mapped
onto hotbench's regions, phases and intervals as workloads/masim.py documents; configs written
here for the test, round-tripped through the parser and checked against what they touch."""

import numpy as np
import pytest

import workloads
from workloads import WorkloadError, _masim_cfg as cfg

# Written for this test in masim's format: comments before and between phases, spaces around
# fields, a region used by two patterns of one phase, explicit and default modes, random and
# sequential patterns, a stride below the page size.
CONFIG = """\
#regions
# name, length
hot, 409600
cold, 819200
log, 204800, none

#phases
warmup
200
hot, 0, 4096, 1
cold, 0, 4096, 1

# the hot region, read at random and swept with 64-byte steps
hot phase
400
hot, 1, 4096, 60, ro
 hot , 0 , 64 , 30
log, 0, 4096, 10, wo

cold phase
1000
cold, 1, 4096, 1, rw
"""


def write(tmp_path, text=CONFIG, name="c.cfg"):
    path = tmp_path / name
    path.write_text(text)
    return path


def make(path, **kw):
    params = ",".join(f"{k}={v}" for k, v in kw.pop("spec", {}).items())
    kw = {"npages": 1024, "page_size": 4096, "seed": 5, **kw}
    return workloads.create(f"masim:config={path}" + (f",{params}" if params else ""), **kw)


def test_parse_reads_every_field():
    regions, phases = cfg.parse(CONFIG, "c.cfg")
    assert regions == [cfg.Region("hot", 409600), cfg.Region("cold", 819200), cfg.Region("log", 204800)]
    assert [(p.name, p.time_ms, len(p.patterns)) for p in phases] == [("warmup", 200, 2), ("hot phase", 400, 3),
                                                                     ("cold phase", 1000, 1)]
    assert phases[1].patterns == [cfg.Pattern("hot", True, 4096, 60, "ro"), cfg.Pattern("hot", False, 64, 30, None),
                                  cfg.Pattern("log", False, 4096, 10, "wo")]


def test_render_round_trips():
    parsed = cfg.parse(CONFIG)
    text = cfg.render(*parsed)
    assert cfg.parse(text) == parsed
    assert cfg.render(*cfg.parse(text)) == text


def test_mapping_onto_regions_phases_and_intervals(tmp_path):
    w = make(write(tmp_path))
    # regions in bytes, laid out from page 0, rounded up to whole pages
    assert {n: (r.start, len(r)) for n, r in w.regions().items()} == {"hot": (0, 100), "cold": (100, 200),
                                                                       "log": (300, 50)}
    # the shortest phase (200 ms) is one interval: 200, 400, 1000 ms -> 1, 2, 5 intervals
    phases = w.params()["phases"]
    assert [(p["name"], p["intervals"]) for p in phases] == [("warmup", 1), ("hot phase", 2), ("cold phase", 5)]
    assert [w.phase_of(i) for i in range(10)] == [0, 1, 1, 2, 2, 2, 2, 2, 0, 1]
    assert phases[1]["access"] == [{"region": "hot", "weight": 60.0, "mode": "ro"},
                                   {"region": "hot", "weight": 30.0, "mode": "wo", "stride": 64},  # masim's default
                                   {"region": "log", "weight": 10.0, "mode": "wo", "stride": 4096}]
    coarse = make(write(tmp_path), spec={"interval_ms": 400, "default_rw": "rw"})
    assert [p["intervals"] for p in coarse.params()["phases"]] == [1, 1, 2]  # round(200/400) is at least 1
    assert coarse.params()["phases"][1]["access"][1]["mode"] == "rw"


def test_what_each_pattern_touches(tmp_path):
    w = make(write(tmp_path), accesses=3000)
    hot, cold, log = (w.regions()[n] for n in ("hot", "cold", "log"))
    warmup = w.truth(0)  # two sequential sweeps with a page stride, written (masim's default mode)
    assert warmup.written[hot.start:hot.stop].all() and warmup.written[cold.start:cold.stop].all()
    assert not warmup.read.any() and not warmup.any[log.start:].any()
    t = w.truth(1)  # hot phase
    assert not t.written[hot.start:hot.stop][~t.written[hot.start:hot.stop]].any()
    assert not t.any[cold.start:cold.stop].any()
    assert not t.read[log.start:log.stop].any() and t.written[log.start:log.stop].all()
    reads, writes = w.counts(1)
    # the 64-byte sweep writes consecutive lines: ~900 accesses, 64 per page -> a run of ~15 pages
    written_hot = np.flatnonzero(writes[hot.start:hot.stop])
    assert 10 <= len(written_hot) <= 20 and np.all(np.diff(written_hot) == 1), written_hot
    assert int(writes[hot.start:hot.stop].sum()) == pytest.approx(0.3 * 3000, rel=0.15)
    # each interval's sweep starts where the accesses expected before it left the cursor:
    # 0.3 x 3000 per interval, 64 bytes each -> interval 1 at byte 57600 (page 14), 2 at page 28
    later = np.flatnonzero(w.counts(2)[1][hot.start:hot.stop])
    assert written_hot[0] == 900 * 64 // 4096 and later[0] == 1800 * 64 // 4096


@pytest.mark.parametrize("threads", [1, 3])
def test_touches_exactly_what_truth_replays(tmp_path, threads):
    w = make(write(tmp_path), accesses=4000, threads=threads)
    w.warmup()
    for interval in (0, 1, 2):
        arena = np.zeros(w.npages * w.page_size, np.uint8)
        w.run_interval(arena, interval)
        stored = (arena.reshape(w.npages, w.page_size) != 0).any(axis=1)
        assert np.array_equal(stored, w.truth(interval).written), interval


@pytest.mark.parametrize("text,message", [
    ("a, 4096\n", "a paragraph of regions, then one paragraph per phase"),
    ("a, lots\n\np\n10\na, 1, 4096, 1\n", "c.cfg:1: a region's size must be an integer, got 'lots'"),
    ("a, 4096\n\np\n10\nb, 1, 4096, 1\n", "c.cfg:5: no region named 'b' (regions: a)"),
    ("a, 4096\n\np\n10\na, 2, 4096, 1\n", "random must be 0 (sequential) or 1 (random)"),
    ("a, 4096\n\np\n10\na, 1, 4096, 1, rx\n", "the mode must be ro, wo or rw, got 'rx'"),
    ("a, 4096\n\np\nsoon\na, 1, 4096, 1\n", "c.cfg:4: a phase's duration (ms) must be an integer"),
    ("a, 4096\n\np\n10\n", "phase 'p' needs a name, a duration in ms and at least one pattern"),
    ("a, 4096\n\np\n10\na, 1, 4096, 0\n", "phase 'p': every probability is 0"),
    ("a, 400000000\n\np\n10\na, 1, 4096, 1\n", "regions need 97657 pages (381 MiB) but the arena has 1024; run "
                                               "with --size 382M or more"),
])
def test_bad_configs_are_one_line(tmp_path, text, message):
    with pytest.raises(WorkloadError) as err:
        make(write(tmp_path, text))
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert str(err.value).startswith("masim: ")
