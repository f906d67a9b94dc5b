"""The mglru-vs-idle answer: recall with MGLRU off, on, and aging."""

from ._rows import data, row, say


def test_mglru_vs_idle_reports_the_recall_aging_costs():
    rows = [row("idle-page", tp=100, fn=0, run="off", interval=i) for i in range(2)]
    rows += [row("idle-page", tp=100, fn=0, run="on", interval=i, interfere="none") for i in range(2)]
    rows += [row("idle-page", tp=40, fn=60, run="on", interval=i, interfere="mglru-age") for i in range(2)]
    settings = {"off": {"mglru": {"set": "off"}}, "on": {"mglru": {"set": "on"}}}
    text = say("mglru-vs-idle", data(rows, settings))
    assert "MGLRU off: recall 1.000" in text and "MGLRU on + aging: recall 0.400 (60.0 % of accessed pages" in text
    assert "changed recall by -0.600 (+120 false idles)" in text
