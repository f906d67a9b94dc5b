"""The nightly history store: a directory of results directories, one per nightly run.

    <history>/
      index.json              rebuilt from the run directories on every read and write
      <run-id>/               manifest.json (with a "nightly" block), samples.parquet,
      <run-id>/                 latency.parquet, micro.json — see bench/nightly/run.py
      ...

The run directories are the truth; ``index.json`` is a cache for people and other tools
(``jq``), listing per run its date, machine, kernel release, suite, version and variant.
Run ids carry the UTC start time, the host name and a pid, so stores from many machines merge
by copying their run directories side by side (``cp -r boxA/* boxB/* merged/``); whichever
``index.json`` the copy leaves behind is replaced at the next read.

The index's file name, format version (with its history) and writer are in
``bench/results.py`` (``results.INDEX``, ``write_index``), as for every file hotbench writes.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from bench import clock as clock_mod
from bench import results
from bench.errors import HotbenchError

__all__ = ["INDEX", "INDEX_VERSION", "default_history_dir", "entries", "rebuild_index", "resolve", "series_key", "series_label",
           "USABLE"]

INDEX = results.INDEX
INDEX_VERSION = results.INDEX_VERSION
USABLE = ("complete", "partial")  # statuses whose numbers history and 'latest' use
_LATEST = re.compile(r"^latest(?:~(\d+))?$")


def default_history_dir() -> Path:
    """$HOTBENCH_HISTORY, else $XDG_DATA_HOME/hotbench/history (~/.local/share/hotbench/history)."""
    if os.environ.get("HOTBENCH_HISTORY"):
        return Path(os.environ["HOTBENCH_HISTORY"])
    import platformdirs

    return platformdirs.user_data_path("hotbench") / "history"


def machine_label(env: dict, name: str | None = None) -> str:
    """*name* ($HOTBENCH_MACHINE when the run was made) or the host name, plus the accelerator for
    runs inside 'hotbench vm' (kvm, tcg and tcg-icount are other machines; every guest is called
    hotbench-vm, so name VM runs with HOTBENCH_MACHINE)."""
    host = str(name or env.get("hostname") or "unknown-host")
    accel = env.get("accel") or "native"
    clock = clock_mod.of_environment(env)
    if clock.instructions:  # instruction counts are their own series: never a point on a wall-clock line
        accel = f"{accel}-icount{clock.shift}" if clock.shift else f"{accel}-icount"
    return host if accel == "native" else f"{host}/{accel}"


def _entry(run_dir: Path, manifest: dict) -> dict | None:
    nightly = manifest.get("nightly")
    if not isinstance(nightly, dict):
        return None
    env = manifest.get("environment") or {}
    suite = nightly.get("suite") or {}
    return {
        "run_id": str(manifest.get("run_id") or run_dir.name),
        "dir": run_dir.name,
        "date": nightly.get("started") or "",
        "machine": machine_label(env, nightly.get("machine")),
        "kernel_release": env.get("kernel_release") or "unknown-kernel",
        "suite": suite.get("name"),
        "suite_version": suite.get("version"),
        "variant": suite.get("variant"),
        "status": manifest.get("status"),
        "seconds": nightly.get("seconds"),
        "git_commit": manifest.get("git_commit"),
        "hotbench_version": env.get("hotbench_version"),
    }


def series_key(entry: dict) -> tuple:
    """Runs whose numbers form one line over time: same machine, suite, suite version and variant."""
    return entry["machine"], entry["suite"], entry["suite_version"], entry["variant"]


def series_label(entry: dict) -> str:
    """A series as a person reads it: 'machine · suite vN variant'."""
    return f"{entry['machine']} · {entry['suite']} v{entry['suite_version']} {entry['variant']}"


def entries(history: Path) -> list[dict]:
    """Every nightly run in *history*, oldest first (directories that are not nightly runs are ignored)."""
    history = Path(history)
    if not history.is_dir():
        raise HotbenchError(f"history store {history} does not exist; run 'hotbench nightly --history {history}' "
                            f"first")
    found = []
    for run_dir in results.run_dirs(history):
        try:
            manifest = results.load_manifest(run_dir)
        except HotbenchError:
            continue  # a foreign or newer-format directory: not ours to index
        entry = _entry(run_dir, manifest)
        if entry:
            found.append(entry)
    found.sort(key=lambda e: (e["date"], e["run_id"]))
    return found


def rebuild_index(history: Path) -> list[dict]:
    """Scan *history* and rewrite ``index.json`` (best effort on a read-only store); returns the entries."""
    found = entries(history)
    try:
        results.write_index(history, found)
    except OSError:
        pass  # a store copied read-only still reads: the run directories are the truth
    return found


def resolve(history: Path, ref: str) -> Path:
    """A run directory from a history reference: a run id, a unique prefix of one, ``latest``
    (the newest complete or partial run of this machine — $HOTBENCH_MACHINE or the host name —
    else of any) or ``latest~N`` (the
    Nth run before that one in the same series: machine, suite, version and variant)."""
    found = entries(history)
    match = _LATEST.match(ref)
    if match:
        usable = [e for e in found if e["status"] in USABLE]
        host = socket.gethostname()
        here = os.environ.get("HOTBENCH_MACHINE") or host
        mine = [e for e in usable if e["machine"].split("/")[0] == here] or usable
        if not mine:
            raise HotbenchError(f"history store {history} holds no completed nightly run")
        newest = mine[-1]
        series = [e for e in mine if series_key(e) == series_key(newest)]
        back = int(match.group(1) or 0)
        if back >= len(series):
            raise HotbenchError(f"{ref}: the series of {newest['run_id']} ({newest['machine']}, suite "
                                f"{newest['suite']} v{newest['suite_version']} {newest['variant']}) has only "
                                f"{len(series)} run(s)")
        return Path(history) / series[-1 - back]["dir"]
    hits = [e for e in found if e["run_id"] == ref or e["dir"] == ref]
    hits = hits or [e for e in found if e["run_id"].startswith(ref)]
    if not hits:
        raise HotbenchError(f"{ref!r} is neither a results directory nor a run in the history store {history}")
    if len(hits) > 1:
        raise HotbenchError(f"{ref!r} matches {len(hits)} runs in {history}: "
                            f"{', '.join(e['run_id'] for e in hits[:4])}{'…' if len(hits) > 4 else ''}")
    return Path(history) / hits[0]["dir"]
