"""``hotbench history``: figures of every nightly metric over time, per machine and kernel, with
step changes marked, and a self-contained HTML page about the latest nightly
(``analysis/history.py``). Built from the history store alone.

    hotbench history                                   # default store, all metrics
    hotbench history --metric recall --kernel '7.3*' --out /var/www/hotbench
    hotbench history --list                            # the store's runs, oldest first

Exit status: 0 written; 1 no usable run in the store, or bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def set_argparser(parser: argparse.ArgumentParser) -> None:
    from bench.nightly.store import default_history_dir

    parser.add_argument("--history", type=Path, metavar="DIR",
                        help=f"history store (default $HOTBENCH_HISTORY, else {default_history_dir()})")
    parser.add_argument("--metric", metavar="M", help="only metrics of family M (micro, collect_ns, recall…), or "
                        "whose name matches the glob or contains the text M")
    parser.add_argument("--kernel", metavar="K", help="only runs whose kernel release matches the glob or contains K")
    parser.add_argument("--out", type=Path, metavar="DIR", help="where index.html, figures/ and steps.json go "
                        "(default DIR/report inside the history store)")
    parser.add_argument("--list", action="store_true", help="list the store's nightly runs and exit")


def _list(store: Path) -> int:
    from analysis.tables import format_table
    from bench.nightly import store as nightly_store

    entries = nightly_store.rebuild_index(store)
    rows = [[e["date"], e["machine"], str(e["kernel_release"]), f"{e['suite']} v{e['suite_version']}",
             str(e["variant"]), str(e["status"]), f"{e['seconds'] or 0:.0f}", e["run_id"]] for e in entries]
    print(format_table(["date (UTC)", "machine", "kernel", "suite", "variant", "status", "s", "run"], rows,
                       right=[False] * 6 + [True, False]))
    return 0


def main(args: argparse.Namespace) -> int:
    from analysis import history
    from analysis.tables import format_table
    from bench.nightly import store as nightly_store

    store = args.history or nightly_store.default_history_dir()
    if args.list:
        return _list(store)
    built = history.build(store, args.out, args.metric, args.kernel)
    print(f"{built['runs']} run(s), {built['metrics']} metric(s), {len(built['figures'])} figure(s); "
          f"latest: {built['latest']['run_id']} ({built['latest']['kernel_release']})")
    if built["steps"]:
        rows = [[str(s["date_after"])[:16], s["metric"], s["series"],
                 f"{s['change']:+.1%}" if history.FAMILIES[s["family"]].kind != "absolute" else f"{s['change']:+.3f}",
                 s["direction"]] for s in built["steps"]]
        print(format_table(["first run after", "metric", "series", "change", ""], rows,
                           right=[False, False, False, True, False]))
    else:
        print("no step change beyond its threshold")
    print(f"index: {built['index']}")
    return 0
