"""``hotbench show RUN_DIR``: what a results directory holds, without opening it in pandas.

    hotbench show results/latest          # the newest run of ./results
    hotbench show results                 # the same: a directory of runs means its newest
    hotbench show results/20261203T0040Z-vm-6695 --json

Prints the command, kernel, machine, clock, status, the cells (every swept dimension with
its values), what was skipped and why, and where each file is with its size. Exit status:
0 shown; 1 not a results directory.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.errors import HotbenchError


def set_argparser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, metavar="RUN_DIR", help="a results directory, or a directory of them "
                        "(its newest run: the 'latest' link)")
    parser.add_argument("--json", action="store_true", help="the same facts as JSON")


def resolve(path: Path) -> Path:
    """*path* itself when it is a run, else the newest run inside it (its ``latest`` link first)."""
    from bench import results

    if (path / results.MANIFEST).is_file():
        return path.resolve() if path.is_symlink() else path  # 'results/latest' shows the run it names
    if (path / results.LATEST / results.MANIFEST).is_file():
        return (path / results.LATEST).resolve()
    runs = results.run_dirs(path)
    if not runs:
        raise HotbenchError(f"{path} is not a results directory, nor a directory of them (no {results.MANIFEST})")
    return runs[-1]


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _human(nbytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""


def _cells(manifest: dict) -> list[str]:
    """Each dimension of the cells with the values it takes (sizes in MiB/GiB)."""
    from bench.arena import size_token

    cells = manifest.get("cells") or []
    lines = [f"{len(cells)} cell(s), {manifest.get('mode') or 'lockstep'} mode"]
    shown = {"tracker": "trackers", "workload": "workloads", "backing": "backing", "size_bytes": "sizes",
             "repeat": "repeats", "intervals": "intervals", "threads": "threads", "accesses": "accesses",
             "write_ratio": "write ratio", "cycle": "cycle (s)", "interfere": "interference", "mode": "mode"}
    for key, name in shown.items():
        values = list(dict.fromkeys(c.get(key) for c in cells if c.get(key) is not None))
        if not values or (key == "interfere" and values == ["none"]) or (key == "mode" and len(values) == 1):
            continue
        if key == "size_bytes":
            values = [size_token(int(v)) for v in sorted(values)]
        if key == "repeat":
            values = [str(len(values))]
        lines.append(f"  {name}: {', '.join(map(str, values))}")
    return lines


def facts(run_dir: Path) -> dict:
    """What ``show`` prints, as data."""
    from bench import clock, results

    manifest = results.load_manifest(run_dir)
    env = manifest.get("environment") or {}
    command = list(manifest.get("command") or [])
    if command and command[0] in ("__main__.py", "-m"):  # 'python3 -m bench ...'
        command[0] = "hotbench"
    status = results.status_line(manifest)  # a killed run says so, with its owner and last update
    files = {p.name: _size(p) for p in sorted(run_dir.iterdir()) if not p.name.startswith(".")}
    return {
        "run": str(run_dir), "run_id": manifest.get("run_id"), "command": " ".join(command), "status": status,
        "kernel": f"{env.get('kernel_release')} {env.get('kernel_version') or ''}".strip(),
        "machine": f"{env.get('hostname')}, {env.get('cpu_model') or 'cpu ?'}, {env.get('cpus')} CPUs, "
                   f"{(env.get('mem_total_bytes') or 0) / 2**30:.0f} GiB, THP {env.get('thp_enabled')}, "
                   f"accel {env.get('accel') or 'native'}",
        "clock": clock.of_manifest(manifest).describe(),
        "hotbench": f"{env.get('hotbench_version')} ({(manifest.get('git_commit') or 'commit unknown')[:12]})",
        "settings": manifest.get("settings") or {},
        "cells": _cells(manifest), "skipped": manifest.get("skipped") or {}, "files": files,
    }


def main(args: argparse.Namespace) -> int:
    run_dir = resolve(args.run)
    found = facts(run_dir)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    width = 10
    for key in ("run", "command", "status", "kernel", "machine", "clock", "hotbench"):
        print(f"{key + ':':<{width}}{found[key]}")
    if found["settings"]:
        print(f"{'settings:':<{width}}" + ", ".join(f"{k}={v}" for k, v in found["settings"].items()))
    skipped = [f"{name}: {reason}" for name, reason in found["skipped"].items()] or ["none"]
    files = [f"{run_dir / name}  {_human(nbytes)}" for name, nbytes in found["files"].items()] or ["none"]
    for key, lines in (("cells", found["cells"]), ("skipped", skipped), ("files", files)):
        for i, line in enumerate(lines):
            print(f"{(key + ':') if i == 0 else '':<{width}}{line.strip()}")
    print(f"{'next:':<{width}}hotbench report {run_dir}  |  hotbench plot {run_dir}  |  "
          f"hotbench export {run_dir} --csv")
    return 0
