"""The HTML index page of ``hotbench history``: the latest nightly, self-contained.

Inline CSS, figures embedded as base64 PNG, no script and no external resource, and no
build time in it: the same store gives the same bytes.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

__all__ = ["page"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 78em; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f8f8f8; border: 1px solid #e4e4e4; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.bad { color: #B33C00; font-weight: bold; } .good { color: #00704F; font-weight: bold; }
.banner { padding: 0.6em 1em; border-radius: 4px; margin: 1em 0; }
.banner.bad { background: #fbe5dc; } .banner.good { background: #e0f3ec; } .banner.none { background: #eee; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _table(headers: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td class=\"num\">{_e(c)}</td>" if i in numeric else f"<td>{_e(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _facts(latest: dict, manifest: dict) -> str:
    env = manifest.get("environment") or {}
    nightly = manifest.get("nightly") or {}
    suite = nightly.get("suite") or {}
    rows = [["run", latest["run_id"]], ["started (UTC)", nightly.get("started")], ["machine", latest["machine"]],
            ["kernel", f"{env.get('kernel_release')} ({env.get('kernel_version')})"],
            ["CPU", f"{env.get('cpu_model')} × {env.get('cpus')}"],
            ["suite", f"{suite.get('name')} v{suite.get('version')} ({suite.get('variant')}), "
                      f"sha256 {str(suite.get('sha256'))[:12]}"],
            ["status", f"{manifest.get('status')} in {nightly.get('seconds')} s"],
            ["hotbench", f"{env.get('hotbench_version')} commit {manifest.get('git_commit') or '?'}"],
            ["THP / NUMA balancing", f"{env.get('thp_enabled')} / {env.get('numa_balancing')}"]]
    if nightly.get("overrides"):
        rows.append(["overrides", ", ".join(f"{k}={v}" for k, v in nightly["overrides"].items())])
    return _table(["", ""], rows)


def _phases(manifest: dict) -> str:
    phases = (manifest.get("nightly") or {}).get("phases") or {}
    rows = []
    for name, phase in phases.items():
        if name == "micro":
            what = f"{len(phase.get('benchmarks', []))} benchmarks"
        else:
            what = f"{phase.get('cells_done', 0)}/{phase.get('cells', 0)} cells: {', '.join(phase.get('trackers', []))}"
        rows.append([name, phase.get("status"), what, f"{phase.get('seconds', 0):.0f} s"])
    out = _table(["phase", "status", "what", "time"], rows, numeric={3})
    skipped = {}
    for name, phase in phases.items():
        for what, why in (phase.get("skipped") or {}).items():
            skipped.setdefault((what, why), []).append(name)
    if skipped:
        out += "<p>Not run on this kernel:</p>" + _table(
            ["tracker or benchmark", "phase", "reason"],
            [[what, ", ".join(names), why] for (what, why), names in sorted(skipped.items())])
    return out


def _comparison(previous: dict | None, comparison) -> str:
    if comparison is None:
        return "<p class=\"banner none\">The first run of its series: nothing to compare with yet.</p>"
    from analysis.compare import text

    regressions = comparison.regressions
    if regressions:
        banner = (f"<p class=\"banner bad\">{len(regressions)} regression(s) against the previous run "
                  f"{_e(previous['run_id'])}: " + ", ".join(_e(r["metric"]) for r in regressions[:8])
                  + ("…" if len(regressions) > 8 else "") + "</p>")
    else:
        banner = f"<p class=\"banner good\">No regression against the previous run {_e(previous['run_id'])}.</p>"
    return banner + f"<pre>{_e(text(comparison))}</pre>"


def _steps(steps: list[dict]) -> str:
    from analysis.compare import FAMILIES

    if not steps:
        return "<p>No step change beyond its threshold in any series.</p>"
    rows = []
    for s in reversed(steps):  # newest first
        change = f"{s['change']:+.1%}" if FAMILIES[s["family"]].kind != "absolute" else f"{s['change']:+.3f}"
        rows.append([str(s["date_after"])[:16], s["metric"], s["series"], change, s["direction"],
                     s["kernel_before"] if s["kernel_before"] == s["kernel_after"]
                     else f"{s['kernel_before']} → {s['kernel_after']}", s["run_after"]])
    return _table(["first run after (UTC)", "metric", "series", "change", "", "kernel", "run"], rows, numeric={3})


def _series(history) -> str:
    from bench.nightly.store import series_label

    groups: dict[str, list[dict]] = {}
    for entry in history.entries:
        groups.setdefault(series_label(entry), []).append(entry)
    rows = [[label, len(runs), str(runs[0]["date"])[:16], str(runs[-1]["date"])[:16],
             ", ".join(dict.fromkeys(str(e["kernel_release"]) for e in runs))]
            for label, runs in sorted(groups.items())]
    other = len(history.all_entries) - len(history.entries)
    note = f"<p>{other} other nightly run(s) in the store are interrupted, still running or filtered out.</p>" \
        if other else ""
    return _table(["series", "runs", "first (UTC)", "last (UTC)", "kernels"], rows, numeric={1}) + note


def _figures(figures: list[dict]) -> str:
    out = []
    for fig in figures:
        data = base64.b64encode(Path(fig["path"]).read_bytes()).decode("ascii")
        out.append(f"<h3>{_e(fig['title'])}</h3><img alt=\"{_e(fig['title'])}\" src=\"data:image/png;base64,{data}\">")
    return "\n".join(out) or "<p>No metric to draw.</p>"


def page(history, latest: dict, manifest: dict, previous: dict | None, comparison, steps: list[dict],
         figures: list[dict]) -> str:
    title = f"hotbench nightly — {latest['machine']}, {latest['kernel_release']}"
    body = [f"<h1>{_e(title)}</h1>",
            f"<p>The latest nightly run in the history store <code>{_e(history.store.name)}</code>, "
            f"{len(history.entries)} run(s) drawn below.</p>",
            "<h2>Latest run</h2>", _facts(latest, manifest), _phases(manifest),
            "<h2>Against the previous run of its series</h2>", _comparison(previous, comparison),
            "<h2>Step changes</h2>", _steps(steps),
            "<h2>Series in the store</h2>", _series(history),
            "<h2>Metrics over time</h2>", _figures(figures)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")
