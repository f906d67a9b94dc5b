"""The floors file: one table per clock, learnt floors and priors, the most specific key winning."""

from bench.nightly import floors


def test_floor_resolution_per_clock(tmp_path):
    path = tmp_path / "f.floors.toml"
    path.write_text('format = 1\n[wall.floors]\ncollect_ns = 0.8\n"collect_ns:x/y/anon/16M" = 0.3\n'
                    '[wall.priors]\n"recall:damon-*" = 0.3\n[instructions.floors]\ncollect_ns = 0.01\n')
    f = floors.load(path)
    assert f.floor_for("collect_ns:x/y/anon/16M", "collect_ns", "wall") == (0.3, "collect_ns:x/y/anon/16M")
    assert f.floor_for("collect_ns:x/y/anon/64M", "collect_ns", "wall") == (0.8, "collect_ns (family)")
    assert f.floor_for("recall:damon-paddr/zipf/anon/16M", "recall", "wall") == (0.3, "recall:damon-* (prior)")
    assert f.floor_for("collect_ns:x/y/anon/16M", "collect_ns", "instructions") == (0.01, "collect_ns (family)")
    assert f.floor_for("collect_ns:x/y/anon/16M", "collect_ns", "cycles") == (None, None)
    assert f.floor_for("recall:uffd-wp/y/anon/16M", "recall", "wall") == (None, None)
