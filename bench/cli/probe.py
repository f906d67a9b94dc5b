"""``hotbench probe``: which hotness-tracking mechanisms this kernel has, and exactly why not otherwise.

Prints ``mechanism  status  reason`` per mechanism, then one line of kernel facts;
``--json`` prints ``{"<mechanism>": {"available": bool, "reason": str}, ...}`` in
listing order (``Tracker.order``: one row per mechanism of the tracker registry, plug-ins
included) and nothing else. Exit status (pyperf ``system`` convention):
0 every mechanism available, 2 some unavailable, 1 error. Changes no kernel state: kernel
state that hotbench processes changed and have not restored (the state journal,
``bench.journal``) is listed after the facts (on stderr with ``--json``) — a killed run's
THP mode is reported as such, and ``hotbench restore`` (or the next run) puts it back.
Imports neither numba nor pandas, so it starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys


def set_argparser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help='print {"<mechanism>": {"available": bool, "reason": str}, ...} and nothing else')
    parser.epilog = "exit status: 0 all mechanisms available, 2 some unavailable, 1 error"


def _facts_line(facts: dict) -> str:
    u = facts["uname"]
    parts = [f"kernel: {u['sysname']} {u['release']} {u['machine']}", "root" if facts["root"] else "not root"]
    uf = facts["uffd"]
    if uf["features"] is not None:
        parts.append(f"uffd features {uf['features']:#x} ioctls {uf['ioctls']:#x} via {uf['via']}")
    else:
        parts.append("uffd " + (", ".join(f"{k} {v}" for k, v in uf["errors"].items()) or "unavailable"))
    mask = facts["pagemap_scan_categories"]
    parts.append(f"PAGEMAP_SCAN categories {mask:#x}" if mask is not None else "no PAGEMAP_SCAN")
    parts.append(f"THP {facts['thp'] or 'absent'}")
    parts.append(f"numa_balancing {facts['numa_balancing'] if facts['numa_balancing'] is not None else 'absent'}")
    lru = facts["lru_gen_enabled"]
    parts.append(f"lru_gen {lru:#06x}" if lru is not None else "lru_gen absent")
    damon = facts["damon_kdamonds"]
    if damon is None:
        parts.append("no DAMON sysfs")
    elif isinstance(damon, str):
        parts.append(f"DAMON sysfs ({damon})")
    else:
        parts.append("DAMON " + (", ".join(f"kdamond {k['index']} {'/'.join(k['operations']) or '-'} {k['state']}"
                                           for k in damon) or "no kdamonds"))
    cfg = facts["kernel_config"]
    parts.append(f"config sha256 {cfg['sha256'][:12]} ({cfg['source']})" if cfg else "config not readable")
    return "; ".join(parts)


def main(args: argparse.Namespace) -> int:
    from bench import trackers
    from bench.kernel import probe as kprobe

    results = trackers.probe_all()
    if args.json:
        print(json.dumps({name: {"available": p.available, "reason": p.reason} for name, p in results.items()},
                         indent=2))
    else:
        rows = [(name, "available" if p.available else "unavailable", p.reason) for name, p in results.items()]
        header = ("mechanism", "status", "reason")
        w0 = max(len(r[0]) for r in [header, *rows])
        w1 = max(len(r[1]) for r in [header, *rows])
        for name, status, reason in [header, *rows]:
            print(f"{name:<{w0}}  {status:<{w1}}  {reason}")
        print()
        print(_facts_line(kprobe.raw_facts()))
    _pending(sys.stderr if args.json else sys.stdout)
    return 0 if all(p.available for p in results.values()) else 2


def _pending(stream) -> None:
    """The state journal's entries: what hotbench changed and has not put back (yet)."""
    from bench import journal

    dead, live = journal.default().pending()
    for entry in dead:
        print(f"not restored: {entry.describe()}, left by {entry.owner.describe()}, which was killed: "
              f"'hotbench restore' (or the next run) puts it back", file=stream)
    for entry in live:
        print(f"changed for a run: {entry.describe()}, by {entry.owner.describe()} (running)", file=stream)
