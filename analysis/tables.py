"""Aligned plain-text tables: they paste into a mailing-list reply unchanged."""

from __future__ import annotations

import math

from analysis.metrics import add_rates

SUMMARY_COLUMNS = {  # column -> (header, format)
    "precision": ("precision", "{:.3f}"),
    "recall": ("recall", "{:.3f}"),
    "recall_any": ("recall(any)", "{:.3f}"),
    "wss_error": ("WSS err", "{:+.1%}"),
    "collect_ms_per_gib": ("collect ms/GiB", "{:.2f}"),
    "arm_ms_per_gib": ("arm ms/GiB", "{:.2f}"),
}


def summary(samples):
    """Mean per tracker x workload x backing over intervals and repeats of the rows that completed."""
    ok = samples[samples["status"].str.startswith("error") == False]  # noqa: E712 (pandas mask)
    if ok.empty:
        return ok
    rated = add_rates(ok)
    keys = ["tracker", "workload", "backing", "sees"]
    table = rated.groupby(keys, sort=True)[list(SUMMARY_COLUMNS)].mean()
    degraded = ok.assign(degraded=ok["status"] != "ok").groupby(keys, sort=True)["degraded"].sum()
    return table.assign(degraded=degraded).reset_index()


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        return fmt.format(float(value))
    except (TypeError, ValueError):
        return "-"


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    numeric = [all(_looks_numeric(r[i]) for r in rows) for i in range(len(headers))]

    def line(cells):
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _looks_numeric(text: str) -> bool:
    return text == "-" or text.lstrip("+-").replace(".", "", 1).rstrip("%").isdigit()


def summary_text(samples) -> str:
    table = summary(samples)
    if table.empty:
        return "(no completed intervals)"
    headers = ["tracker", "workload", "backing", "sees"] + [h for h, _ in SUMMARY_COLUMNS.values()]
    rows = []
    for rec in table.to_dict("records"):
        cells = [rec["tracker"], rec["workload"], rec["backing"], rec["sees"]]
        cells += [_cell(rec[col], fmt) for col, (_, fmt) in SUMMARY_COLUMNS.items()]
        if rec["degraded"]:
            cells[0] += "*"
        rows.append(cells)
    text = format_table(headers, rows)
    if table["degraded"].any():
        text += "\n* some intervals degraded (see the status column in samples.parquet)"
    return text
