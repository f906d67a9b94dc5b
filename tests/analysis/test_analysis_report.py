"""report.md / report.html / CSVs: content, self-containment, and a byte-identical rebuild
from a copied results directory."""

import re
import shutil
import warnings

import pandas as pd
import pytest

import hb_synth
from analysis import report


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("original")
    hb_synth.make_tree(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = report.build([root])
    return root, out


def _files(directory):
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_report_rebuilt_from_a_copy_is_identical(built, tmp_path):
    root, out = built
    copy = tmp_path / "somewhere" / "else"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("report"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = report.build([copy])
    original, rebuilt = _files(out), _files(again)
    assert set(original) == set(rebuilt)
    for name in original:
        assert original[name] == rebuilt[name], f"{name} differs when rebuilt from a copy"
    for name, body in rebuilt.items():
        if not name.endswith(".png"):
            assert str(tmp_path).encode() not in body and str(root).encode() not in body, name


def test_report_content(built):
    root, out = built
    md = (out / "report.md").read_text()
    headings = re.findall(r"^## (.+)$", md, re.M)
    assert headings[:2] == ["Environment", "Unavailable mechanisms"]
    assert "6.18.44-synth" in md and "7.3.0-synth (tcg)" in md and "accel           tcg" in md
    assert "UFFDIO_API lacks UFFD_FEATURE_RWP" in md
    assert "cold FP" in md and "p99 stall µs" in md and "slowdown" in md and "collect ms/GiB" in md
    assert "Welch" in md and "Benjamini" in md
    assert "--out" not in md  # where results went is not part of the command shown
    for table in ("accuracy", "cost", "overhead", "scaling", "comparison", "unavailable", "errors", "environment"):
        assert (out / "tables" / f"{table}.csv").stat().st_size > 100, table
    acc = pd.read_csv(out / "tables" / "accuracy.csv")
    assert {"precision_mean", "precision_sd", "precision_n", "precision_ci95", "cold_fp_rate_mean"} <= set(acc.columns)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(list((out / "figures").glob("*.png"))) > 10
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html), "the HTML must not need the network"


def test_report_flags_the_real_difference_only(built):
    _, out = built
    tests = pd.read_csv(out / "tables" / "comparison.csv")
    flagged = tests[tests["significant"]]
    assert len(flagged) and set(flagged["tracker"]) == {"uffd-wp"}  # the synthetic kernel doubles its cost
    assert "collect_ms_per_gib" in set(flagged["metric"])
    accuracy = {"precision", "recall", "f1", "recall_any", "wss_error", "cold_fp_rate"}
    assert not set(flagged["metric"]) & accuracy, "noise in accuracy was flagged"
    assert (flagged["note"] == "timing under tcg: not comparable").all()
