"""Every figure from a small synthetic results tree: files exist, are not blank, carry no
warnings, are reproducible byte for byte; figures the data cannot support are skipped with
a reason."""

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import hb_synth
from analysis import catalog, data, figures, style


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    hb_synth.make_tree(root)
    return root


@pytest.fixture(scope="module")
def loaded(tree):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return data.load([tree])


def _distinct_colours(png: Path) -> int:
    from matplotlib.image import imread

    pixels = (imread(png)[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    return len(np.unique(pixels, axis=0))


def _ink(png: Path) -> float:
    """Share of pixels that are not (near) white."""
    from matplotlib.image import imread

    rgb = imread(png)[..., :3]
    return float((rgb.min(axis=2) < 0.9).mean())


def test_every_figure_is_drawn(loaded, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a matplotlib, pandas or numpy warning is a failure
        written, skipped = figures.render(loaded, tmp_path, None, "png")
    assert skipped == {}
    stems = {p.stem for p in written}
    for name in catalog.NAMES:
        assert any(s == name or s.startswith(name + "-") for s in stems), f"{name} drew no file"
    for png in written:
        assert png.stat().st_size > 30_000, png
        assert _distinct_colours(png) > 100, f"{png.name} looks blank"
        assert _ink(png) > 0.02, f"{png.name} is nearly all white"


@pytest.mark.parametrize("fmt,magic", [("svg", b"<?xml"), ("pdf", b"%PDF"), ("png", b"\x89PNG")])
def test_formats_are_reproducible(loaded, tmp_path, fmt, magic):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first, _ = figures.render(loaded, tmp_path / "a", ["cost-vs-size"], fmt)
        second, _ = figures.render(loaded, tmp_path / "b", ["cost-vs-size"], fmt)
    assert [p.name for p in first] == [f"cost-vs-size.{fmt}"]
    body = first[0].read_bytes()
    assert body.startswith(magic) and len(body) > 10_000
    assert body == second[0].read_bytes(), f"{fmt} output differs between two identical builds"
    assert b"CreationDate" not in body and b"<dc:date>" not in body


def test_missing_data_skips_with_reasons(tree, tmp_path):
    """Lockstep samples only, one size, one interval length: the figures that need more say what."""
    import pandas as pd

    run = sorted(p for p in tree.iterdir() if (p / "manifest.json").exists())[0]
    bare = tmp_path / run.name
    bare.mkdir()
    shutil.copy(run / "manifest.json", bare)
    samples = pd.read_parquet(run / "samples.parquet")
    samples = samples[(samples["mode"] != "concurrent") & (samples["size_bytes"] == hb_synth.SIZES[0])
                      & samples["workload_params"].str.contains(f'"accesses": {hb_synth.ACCESSES[0]},')]
    samples.drop(columns=["mode"]).to_parquet(bare / "samples.parquet", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        written, skipped = figures.render(data.load([bare]), tmp_path / "figs", None, "png")
    assert {p.stem for p in written} == {"precision-recall", "wss-timeline", "pareto"}
    assert set(skipped) == set(catalog.NAMES) - {"precision-recall", "wss-timeline", "pareto"}
    assert "single interval length" in skipped["accuracy-vs-interval"]
    assert "one arena size" in skipped["cost-vs-size"]
    assert "pages.parquet" in skipped["heatmap"] and "latency.parquet" in skipped["stall-cdf"]
    assert all(reason and "\n" not in reason for reason in skipped.values())


def test_tracker_styles_are_fixed_and_distinct():
    pairs = [style.tracker_style(t) for t in style.tracker_styles()]
    assert set(style.tracker_styles()) >= {"rwp", "idle-page", "mglru", "uffd-wp", "mprotect"}
    assert len(set(pairs)) == len(pairs), "two trackers share colour and marker"
    palette = set(style.OKABE_ITO.values()) | {style.GREY}
    assert all(colour in palette for colour, _ in pairs)
    assert style.tracker_style("uffd-wp") == (style.OKABE_ITO["blue"], "s")
    assert style.tracker_style("rwp-sync") == style.tracker_style("rwp")  # a variant looks like its family
    assert style.tracker_style("some-new-tracker") == style.tracker_style("some-new-tracker")
    assert style.tracker_style("some-new-tracker")[0] in palette


def test_stall_cdf_flattens_ragged_batch_arrays():
    """Concurrent runs store one array of batch latencies per A/B run, of different lengths."""
    import numpy as np
    import pandas as pd

    from analysis._fig_dist import _flat

    column = pd.Series([np.array([1.0, 2.0, 3.0]), np.array([4.0])], dtype=object)
    assert _flat(column).tolist() == [1.0, 2.0, 3.0, 4.0]
    assert _flat(pd.Series([5, 6])).tolist() == [5.0, 6.0]
