"""Aligned plain-text tables: they paste into a mailing-list reply unchanged."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from analysis.data import in_clock_units
from analysis.metrics import add_rates
from bench import clock

SUMMARY_COLUMNS = {  # column -> (header, format)
    "precision": ("precision", "{:.3f}"),
    "recall": ("recall", "{:.3f}"),
    "recall_any": ("recall(any)", "{:.3f}"),
    "wss_error": ("WSS err", "{:+.1%}"),
    "collect_ms_per_gib": ("collect ms/GiB", "{:.2f}"),
    "arm_ms_per_gib": ("arm ms/GiB", "{:.2f}"),
}


def summary(samples):
    """Mean over intervals and repeats of the rows that completed, one row per swept combination:
    tracker x workload spec x backing x size (x interference, x the workload parameters a sweep
    varied). Two masim configs are two rows; two sizes are two rows, never averaged."""
    ok = samples[samples["status"].str.startswith("error") == False]  # noqa: E712 (pandas mask)
    if ok.empty:
        return ok
    rated = add_rates(in_clock_units(ok, clock.of_rows(ok)))
    spec = "workload_spec" if "workload_spec" in rated else "workload"
    rated = rated.assign(workload=rated[spec])
    if "workload_params" in rated and "workload_spec" in rated:
        from analysis.data import varying_params

        rated = rated.assign(params=varying_params(rated["workload_spec"], rated["workload_params"]))
    keys = [k for k in ("tracker", "workload", "backing", "size_bytes", "params", "interfere", "sees") if k in rated]
    table = rated.groupby(keys, sort=True, dropna=False)[list(SUMMARY_COLUMNS)].mean()
    degraded = rated.assign(degraded=rated["status"] != "ok").groupby(keys, sort=True, dropna=False)["degraded"].sum()
    return table.assign(degraded=degraded).reset_index()


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        return fmt.format(float(value))
    except (TypeError, ValueError):
        return "-"


def format_table(headers: list[str], rows: list[list[str]], right: list[bool] | None = None) -> str:
    """Aligned columns, two spaces apart; numeric columns (or those *right* marks) right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    numeric = right or [all(_looks_numeric(r[i]) for r in rows) for i in range(len(headers))]

    def line(cells):
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _looks_numeric(text: str) -> bool:
    return text == "-" or text.lstrip("+-").replace(".", "", 1).rstrip("%").isdigit()


def summary_text(samples) -> str:
    from bench.arena import size_token

    table = summary(samples)
    if table.empty:
        return "(no completed intervals)"
    clk = clock.of_rows(samples)
    dims = [("tracker", "tracker", str), ("workload", "workload", str), ("backing", "backing", str),
            ("size_bytes", "size", lambda v: size_token(int(v)))]
    if "params" in table and (table["params"] != "").any():
        dims.append(("params", "parameters", str))
    if "interfere" in table and table["interfere"].nunique() > 1:
        dims.append(("interfere", "interference", str))
    dims.append(("sees", "sees", str))
    dims = [d for d in dims if d[0] in table]
    headers = [h for _, h, _ in dims] + [clk.relabel(h) for h, _ in SUMMARY_COLUMNS.values()]
    rows = []
    for rec in table.to_dict("records"):
        cells = [show(rec[col]) for col, _, show in dims]
        cells += [_cell(rec[col], fmt) for col, (_, fmt) in SUMMARY_COLUMNS.items()]
        if rec["degraded"]:
            cells[0] += "*"
        rows.append(cells)
    text = format_table(headers, rows, right=[False] * len(dims) + [True] * len(SUMMARY_COLUMNS))
    if table["degraded"].any():
        text += "\n* some intervals degraded (see the status column in samples.parquet)"
    return text


OVERHEAD_COLUMNS = {  # column -> (header, format), medians over A/B pairs
    "slowdown": ("slowdown", "{:+.1%}"),
    "lat_p50_ns": ("p50 us", "{:.0f}"),
    "lat_p99_ns": ("p99 us", "{:.0f}"),
    "base_lat_p99_ns": ("base p99 us", "{:.0f}"),
    "lat_p999_ns": ("p99.9 us", "{:.0f}"),
    "lat_max_ns": ("max us", "{:.0f}"),
    "tracker_cpu_ns_per_cycle_per_gib": ("CPU ms/cycle/GiB", "{:.2f}"),
    "collect_ns": ("collect ms", "{:.2f}"),
}
_SCALE = {"lat_p50_ns": 1e-3, "lat_p99_ns": 1e-3, "base_lat_p99_ns": 1e-3, "lat_p999_ns": 1e-3,
          "lat_max_ns": 1e-3, "tracker_cpu_ns_per_cycle_per_gib": 1e-6, "collect_ns": 1e-6}


def overhead_text(samples) -> str:
    """Concurrent-mode rows: slowdown against the interleaved baseline, batch-latency tails, tracker CPU."""
    if samples.empty:
        return "(no completed cells)"
    keys = ["tracker", "workload", "backing", "size_bytes", "threads", "cycle_ms"]
    samples = in_clock_units(samples, clock.of_rows(samples))
    table = samples.groupby(keys, sort=True)[list(OVERHEAD_COLUMNS)].median().reset_index()
    clk = clock.of_rows(samples)  # the cycle is a setting (guest time), the other columns are costs
    headers = ["tracker", "workload", "backing", "size", "threads", "cycle ms"] + [clk.relabel(h) for h, _ in
                                                                                  OVERHEAD_COLUMNS.values()]
    rows = []
    for rec in table.to_dict("records"):
        cells = [rec["tracker"], rec["workload"], rec["backing"], f"{rec['size_bytes'] >> 20}M", str(rec["threads"]),
                 f"{rec['cycle_ms']:.0f}"]
        cells += [_cell(None if rec[c] is None else rec[c] * _SCALE.get(c, 1), fmt)
                  for c, (_, fmt) in OVERHEAD_COLUMNS.items()]
        rows.append(cells)
    return format_table(headers, rows)


def _decimals(v: float) -> int:
    """Decimals for three significant digits, none beyond the units for values of 100 and more."""
    a = abs(v)
    return 0 if a >= 100 or a == 0 else max(2 - math.floor(math.log10(a)), 0)


def three_significant(v: float, like: float | None = None) -> str:
    """Three significant digits, no exponent; a spread takes the decimals of its mean (*like*)."""
    return f"{v:.{_decimals(v if like is None else like)}f}"


@dataclass
class Table:
    name: str  # CSV file stem
    headers: list[str]
    rows: list[list[str]]
    right: list[bool]
    frame: object  # the numbers behind it, for the CSV (pandas.DataFrame)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        return format_table(self.headers, self.rows, self.right)
