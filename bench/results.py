"""Every file hotbench writes as a result, in one place: its name, its format version with a
written history, its atomic writer and its version-checking reader. Nothing else opens a
results file for writing.

A results directory: ``<out>/<run-id>/``

  manifest.json      environment, probes, cells, skips, settings; status and progress
  samples.parquet    one row per cell x interval (lockstep) or A/B pair (concurrent)
  partial.json       the finished intervals of the cell in progress (exists only while a
                     cell runs, or after the process was killed in one; see ``load_samples``)
  latency.parquet    concurrent mode: every batch's duration
  pages.parquet/     ``--pages``: one part per cell, per-interval page bitmaps
  eviction.parquet   rows of ``hotbench evict`` (experiment steps)
  micro.json         pyperf's own JSON format, written by pyperf (versioned by pyperf)

``<out>/latest`` is a relative symlink to the newest run directory created in ``<out>``
(replaced in one rename; a ``latest`` that is not a symlink is left alone).

Run format history (``FORMAT_VERSION``, stamped in every manifest; loaders accept the
versions in ``ACCEPTED`` and refuse any other by name):
  1  2026-11  first format: manifest (environment, probes, cells, skips) and one
              samples row per cell x interval.
  2  2026-11  optional files: latency.parquet (concurrent mode: every batch's duration)
              and pages.parquet/ (a directory, one part per cell: per-interval bitmaps of
              truth and observation, np.packbits little-endian, for heatmaps).
  3  2026-12  progress that outlives the process: the manifest is rewritten after every
              interval and cell, with ``progress`` {cells_total, cells_done, cell,
              intervals_done, updated, owner {pid, start, boot_id, host}}; ``status`` is
              running | complete | interrupted (with ``signal``, e.g. "SIGTERM") | failed
              (with ``error``); samples rows carry ``partial`` (True: the row's cell did not
              finish, its finished intervals were kept); partial.json ({"rows": [...]}, JSON
              because it is rewritten after every interval: a sixth of parquet's cost) holds
              the cell in progress. A "running" manifest whose owner is gone was killed
              (``status_line``). Versions 1-2 wrote "interrupted after N of M cells".
  4  2026-12  optional samples columns kev.<phase>.<event> (kernel events counted per
              phase, 'run --kernel-events') and manifest "kernel_events" (what was counted,
              how, and why any other event was not); optional profile.parquet (top kernel
              functions per profiled phase and interval, 'run --kernel-profile') and manifest
              "kernel_profile".

Other files (each with its own version):
  eviction results (``hotbench evict --out FILE``, ``EVICTION_VERSION``)
    1  2026-11  {"format": "hotbench-evict", "version": 1, "rows": [...]} (.json only).
    2  2026-12  the same JSON; .parquet carries {"hotbench_format": "hotbench-evict",
                "hotbench_version": "2"} in its schema metadata; rewritten after every variant.
                .csv is an export for spreadsheets: no version, not read back.
  experiment.json (``EXPERIMENT_VERSION``)
    0  2026-11  unversioned: {"experiment", "quick", "started", "environment", "steps"}.
    1  2026-12  the same plus "format_version" and, while it runs, "owner" (``Owner``).
  the nightly store's index.json (``INDEX_VERSION``)
    1  2026-11  {"index_version", "entries": [...]} sorted by date then run id.

Every file is written to a temporary name in the same directory, mode 0644, and renamed
into place (``atomic_write_bytes``), so a run killed at any moment leaves the previous
complete version of each file: valid partial results, never a torn file. Writes at the end
of a cell or run are also fsync'd (durable across a machine crash); the per-interval
progress is not (a killed process loses nothing the page cache holds, and an fsync per
interval would slow short intervals down). A run directory is never reused.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._owner import Owner
from bench.errors import HotbenchError

FORMAT_VERSION = 4
ACCEPTED = (1, 2, 3, 4)
MANIFEST = "manifest.json"
SAMPLES = "samples.parquet"
PARTIAL = "partial.json"  # the finished intervals of the cell in progress
PAGES = "pages.parquet"  # a directory of per-cell parts
LATEST = "latest"  # <out>/latest: a symlink to the newest run directory made there
LATENCY = "latency.parquet"  # concurrent mode: every batch's duration, per cell, pair and variant
PROFILE = "profile.parquet"  # run --kernel-profile: top kernel functions per profiled phase and interval
EVICTION = "eviction.parquet"  # rows of 'hotbench evict' inside a results directory (experiment steps)
MICRO = "micro.json"  # pyperf's format, written by pyperf itself
FILE_MODE = 0o644
DIR_MODE = 0o755  # the directories hotbench makes, so that the 0644 files in them can be read

EVICTION_FORMAT, EVICTION_VERSION, EVICTION_ACCEPTED = "hotbench-evict", 2, (1, 2)
EXPERIMENT = "experiment.json"
EXPERIMENT_VERSION, EXPERIMENT_ACCEPTED = 1, (0, 1)
INDEX = "index.json"
INDEX_VERSION = 1

RUNNING, COMPLETE, INTERRUPTED, FAILED = "running", "complete", "interrupted", "failed"


def new_run_id() -> str:
    """Sortable and unique enough across machines: UTC time, host, pid."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{stamp}-{socket.gethostname().split('.')[0]}-{os.getpid()}"


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace *path* with *data* in one rename (mode 0644); *durable* also fsyncs the file
    and its directory, so the new version survives a machine crash, not only a killed process."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp makes 0600: results are for everyone to read
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (9p) refuse fsync on a directory; the rename is still atomic
    finally:
        os.close(fd)


def write_json(path: Path, data: dict, *, durable: bool = True) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False, default=str) + "\n").encode(),
                       durable=durable)


def write_manifest(run_dir: Path, manifest: dict, *, durable: bool = True) -> None:
    write_json(Path(run_dir) / MANIFEST, {"format_version": FORMAT_VERSION, **manifest}, durable=durable)


def _parquet_bytes(rows, metadata: dict[str, str] | None = None) -> bytes:
    """*rows* (a list of dicts, or a DataFrame) as parquet, with *metadata* in the schema."""
    import io

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               **{k.encode(): v.encode() for k, v in metadata.items()}})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _write_parquet(path: Path, rows, *, durable: bool = True) -> None:
    atomic_write_bytes(path, _parquet_bytes(rows), durable=durable)


def write_samples(run_dir: Path, rows) -> None:
    """samples.parquet from rows (dicts) or a DataFrame."""
    _write_parquet(Path(run_dir) / SAMPLES, rows)


def _plain(value):
    """numpy scalars as Python numbers, for JSON."""
    return value.item() if hasattr(value, "item") else str(value)


def write_partial(run_dir: Path, rows: list[dict]) -> None:
    """The finished intervals of the cell in progress (rewritten after each; small)."""
    data = json.dumps({"format_version": FORMAT_VERSION, "rows": rows}, default=_plain)
    atomic_write_bytes(Path(run_dir) / PARTIAL, data.encode(), durable=False)


def load_partial(run_dir: Path):
    """The finished intervals of the cell a killed run was in (empty DataFrame when none)."""
    import pandas as pd

    path = Path(run_dir) / PARTIAL
    try:
        rows = json.loads(path.read_text())["rows"] if path.exists() else []
    except (OSError, ValueError, KeyError) as e:
        raise HotbenchError(f"cannot read {path}: {e}") from None
    return pd.DataFrame(rows).assign(partial=True) if rows else pd.DataFrame()


def drop_partial(run_dir: Path) -> None:
    (Path(run_dir) / PARTIAL).unlink(missing_ok=True)


def write_latencies(run_dir: Path, rows) -> None:
    _write_parquet(Path(run_dir) / LATENCY, rows)


def write_profile(run_dir: Path, rows: list[dict]) -> None:
    _write_parquet(run_dir / PROFILE, rows)


def write_pages(run_dir: Path, cell_number: int, rows: list[dict]) -> None:
    """One part file per cell: rewriting one growing file after every cell would be quadratic."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    # An explicit schema: a tracker that cannot split reads from writes leaves those columns
    # null, and every part must still have the same column types to be read as one table.
    schema = pa.schema([("run_id", pa.string()), ("cell", pa.int64()), ("tracker", pa.string()),
                        ("workload_spec", pa.string()), ("backing", pa.string()), ("size_bytes", pa.int64()), ("repeat", pa.int64()),
                        ("npages", pa.int64()), ("interval", pa.int64()), ("truth_read", pa.binary()),
                        ("truth_written", pa.binary()), ("reported", pa.binary()), ("reported_read", pa.binary()),
                        ("reported_written", pa.binary())])
    make_dirs(run_dir / PAGES)
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf)
    atomic_write_bytes(run_dir / PAGES / f"cell-{cell_number:05d}.parquet", buf.getvalue())


def make_dirs(path: Path) -> None:
    """``mkdir -p`` whose every new directory is DIR_MODE whatever the umask, as the files are
    FILE_MODE whatever it is: results are for everyone on the machine to read."""
    missing = []
    path = Path(path)
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        os.chmod(directory, DIR_MODE)


def create_out_dir(out: Path) -> None:
    """Make *out* (an experiment's output directory) and its parents; a user error
    in one line when that cannot be done."""
    try:
        make_dirs(out)
    except OSError as e:
        raise HotbenchError(f"cannot create {out}: {e.strerror}; choose another --out") from None


def check_out_file(path: Path, option: str = "--out") -> None:
    """Before a command runs: the results file *path* can be written where it is named (its
    directory exists and is writable), so that finished work is never lost to a typo."""
    parent = Path(path).parent
    if not parent.is_dir():
        raise HotbenchError(f"{option} {path}: no directory {parent}; create it or choose another {option}")
    if not os.access(parent, os.W_OK):
        raise HotbenchError(f"{option} {path}: cannot write in {parent}; choose another {option}")


def run_dirs(parent: Path) -> list[Path]:
    """The run directories directly inside *parent*, oldest first (the ``latest`` link is not one)."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if not p.is_symlink() and (p / MANIFEST).is_file())


def point_latest(out: Path, run_dir: Path) -> None:
    """Make ``<out>/latest`` a (relative) symlink to *run_dir*, replaced in one rename; a
    ``latest`` that is not a symlink (someone's own directory) is left alone."""
    link = Path(out) / LATEST
    if link.exists() and not link.is_symlink():
        return
    tmp = Path(out) / f".{LATEST}.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        os.symlink(Path(run_dir).name, tmp)
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)  # a filesystem without symlinks: the run itself is unaffected


def create_run_dir(out: Path, run_id: str, latest: bool = True) -> Path:
    """*out*/*run_id*, new; with *latest*, ``<out>/latest`` points at it from now on."""
    run_dir = Path(out) / run_id
    try:
        make_dirs(out)
        run_dir.mkdir()
        os.chmod(run_dir, DIR_MODE)
    except FileExistsError:
        raise HotbenchError(f"results directory {run_dir} already exists; hotbench never overwrites a run") from None
    except OSError as e:
        raise HotbenchError(f"cannot create results directory {run_dir}: {e.strerror}; choose another --out") from None
    if latest:
        point_latest(out, run_dir)
    return run_dir


def load_manifest(run_dir: Path) -> dict:
    try:
        manifest = json.loads((Path(run_dir) / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise HotbenchError(f"{run_dir} is not a hotbench results directory ({e})") from None
    version = manifest.get("format_version")
    if version not in ACCEPTED:
        raise HotbenchError(f"{run_dir}: results format version {version!r} is not one this hotbench reads "
                            f"({', '.join(map(str, ACCEPTED))})")
    return manifest


def load_samples(run_dir: Path):
    """Every sample row of a run: the finished cells, plus the finished intervals of a cell the
    run was killed in (``partial`` True; a run that ended normally has none left over)."""
    import pandas as pd

    load_manifest(run_dir)
    path = Path(run_dir) / SAMPLES
    frames = [f for f in (pd.read_parquet(path) if path.exists() else None, load_partial(run_dir))
              if f is not None and len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# ---------------------------------------------------------------- status and progress

def _utc(seconds: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _age(stamp: str | None) -> str:
    try:
        seconds = time.time() - time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) + time.timezone
    except (TypeError, ValueError):
        return "at an unknown time"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{max(seconds, 0):.0f} s ago"


def run_status(manifest: dict) -> str:
    """running | killed | complete | interrupted | failed | partial (nightly) | unknown: a
    ``running`` manifest whose owner process is gone (or that predates owners) is ``killed``."""
    status = str(manifest.get("status") or "unknown")
    if status.startswith("interrupted"):
        return INTERRUPTED
    if status != RUNNING:
        return status
    owner = Owner.from_dict((manifest.get("progress") or {}).get("owner"))
    return RUNNING if owner is not None and owner.alive() is not False else "killed"


def status_line(manifest: dict) -> str:
    """One line for people: 'complete: 4 of 4 cells', 'killed after 2 of 5 cells (pid 77 is
    gone; last update 3 min ago)', 'interrupted by SIGTERM after 1 of 2 cells', 'running: ...'."""
    progress = manifest.get("progress") or {}
    done = progress.get("cells_done", manifest.get("cells_done"))
    total = progress.get("cells_total", len(manifest.get("cells") or []) or None)
    cells = f"{done if done is not None else '?'} of {total if total is not None else '?'} cells"
    if "phases_total" in progress:  # a nightly run: its progress is counted in phases
        cells = f"{progress.get('phases_done', 0)} of {progress['phases_total']} phases"
    status, raw = run_status(manifest), str(manifest.get("status") or "unknown")
    owner = Owner.from_dict(progress.get("owner"))
    updated = f"last update {_age(progress.get('updated'))}" if progress.get("updated") else "no progress recorded"
    kept = _partial_kept(manifest) if status != RUNNING else ""
    if status == "killed":
        who = f"{owner.describe()} is gone" if owner else "written by a hotbench that recorded no owner"
        return f"killed after {cells}{kept} ({who}; {updated})"
    if status == RUNNING:
        where = "" if owner.alive() else f"; cannot check {owner.describe()} from here"
        return f"running: {cells} done, {updated} ({owner.describe()}{where})"
    if status == INTERRUPTED:
        if raw != INTERRUPTED:  # formats 1-2: "interrupted after N of M cells"
            return raw
        return f"interrupted by {manifest.get('signal') or 'a signal'} after {cells}{kept}"
    if status == FAILED:
        return f"failed after {cells}{kept}: {manifest.get('error') or 'see the error rows'}"
    return f"{status}: {cells}" if total is not None else status


def _partial_kept(manifest: dict) -> str:
    """', and 3 finished intervals of cell 2 (kept, marked partial)' when the run ended in a cell."""
    progress = manifest.get("progress") or {}
    kept, cell = progress.get("intervals_done") or 0, progress.get("cell")
    if not kept or cell is None:
        return ""
    step = "A/B pair" if manifest.get("mode") == "concurrent" else "interval"
    return f", and {kept} finished {step}{'s' if kept != 1 else ''} of cell {cell + 1} (kept, marked partial)"


def stamp_progress(manifest: dict, **fields) -> dict:
    """Update the manifest's ``progress`` block (owner and time included) in place; returns it."""
    progress = manifest.setdefault("progress", {})
    progress.update(fields)
    progress["updated"] = _utc()
    progress.setdefault("owner", Owner.current().as_dict())
    return progress


class RunWriter:
    """Writes one run directory while the run goes on, so that whatever ends the process —
    a finished plan, an error, a signal, SIGKILL — leaves every finished interval readable.

    ``interval(row)`` after each finished interval (lockstep) or A/B pair (concurrent):
    the cell's rows so far go to partial.json and the manifest's progress is updated;
    ``cell(rows, ...)`` when a cell ends: its rows join samples.parquet (durable),
    partial.json goes; ``finish(status)`` once at the end: rows of a cell that did not
    finish are kept, marked ``partial``.
    """

    def __init__(self, run_dir: Path, manifest: dict, cells_total: int):
        self.run_dir, self.manifest = Path(run_dir), manifest
        self.rows: list[dict] = []
        self.latencies: list[dict] = []
        self.pending: list[dict] = []  # finished intervals of the cell in progress
        self.pending_latencies: list[dict] = []
        self.cells_done = 0
        manifest["status"] = RUNNING
        stamp_progress(manifest, cells_total=cells_total, cells_done=0, cell=None, intervals_done=0)
        write_manifest(self.run_dir, manifest)

    def interval(self, row: dict, cell: int, latencies: list[dict] = ()) -> None:
        self.pending.append(row)
        self.pending_latencies.extend(latencies)
        write_partial(self.run_dir, self.pending)
        stamp_progress(self.manifest, cell=cell, intervals_done=len(self.pending))
        write_manifest(self.run_dir, self.manifest, durable=False)

    def cell(self, rows: list[dict], latencies: list[dict] = (), pages: list[dict] | None = None,
             number: int | None = None) -> None:
        self.rows.extend({**r, "partial": False} for r in rows)
        self.latencies.extend(latencies)
        self.pending, self.pending_latencies = [], []
        if pages and number is not None:
            write_pages(self.run_dir, number, pages)
        if self.latencies:
            write_latencies(self.run_dir, self.latencies)
        write_samples(self.run_dir, self.rows)
        drop_partial(self.run_dir)
        self.cells_done += 1
        stamp_progress(self.manifest, cells_done=self.cells_done, cell=None, intervals_done=0)
        write_manifest(self.run_dir, self.manifest)

    def finish(self, status: str, **fields) -> None:
        """End the run as *status* (complete, interrupted with ``signal``, failed with ``error``);
        the progress block keeps which cell's finished intervals were kept as partial rows."""
        kept, cell = len(self.pending), (self.manifest.get("progress") or {}).get("cell")
        if self.pending:
            self.rows.extend({**r, "partial": True} for r in self.pending)
            self.latencies.extend(self.pending_latencies)
            self.pending, self.pending_latencies = [], []
            if self.latencies:
                write_latencies(self.run_dir, self.latencies)
            write_samples(self.run_dir, self.rows)
        drop_partial(self.run_dir)
        self.manifest["status"] = status
        self.manifest.update(fields)
        self.manifest["cells_done"] = self.cells_done
        stamp_progress(self.manifest, cells_done=self.cells_done, cell=cell if kept else None, intervals_done=kept)
        write_manifest(self.run_dir, self.manifest)


# ---------------------------------------------------------------- CSV exports

def write_csv(target, frame) -> None:
    """A table as CSV for spreadsheets (an export: no version, never read back): to *target*, a
    path (atomically) or an open text stream such as stdout."""
    if isinstance(target, (str, Path)):
        atomic_write_bytes(Path(target), frame.to_csv(index=False).encode())
    else:
        frame.to_csv(target, index=False)


# ---------------------------------------------------------------- eviction results

def write_eviction(path: Path, rows: list[dict]) -> None:
    """``hotbench evict --out FILE``: .json or .parquet (versioned), .csv (an export)."""
    path = Path(path)
    if path.suffix == ".json":
        write_json(path, {"format": EVICTION_FORMAT, "version": EVICTION_VERSION, "rows": rows})
    elif path.suffix == ".parquet":
        atomic_write_bytes(path, _parquet_bytes(rows, {"hotbench_format": EVICTION_FORMAT,
                                                       "hotbench_version": str(EVICTION_VERSION)}))
    elif path.suffix == ".csv":
        import pandas as pd

        write_csv(path, pd.DataFrame(rows))
    else:
        raise HotbenchError(f"{path}: eviction results are written as .json, .csv or .parquet")


def load_eviction(path: Path):
    """Rows of an eviction results file (.json or .parquet) as a DataFrame; refuses unknown versions."""
    import pandas as pd
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
            fmt, version, rows = data.get("format"), data.get("version"), data.get("rows", [])
            frame = pd.DataFrame(rows)
        elif path.suffix == ".parquet":
            meta = pq.read_schema(path).metadata or {}
            fmt = meta.get(b"hotbench_format", b"").decode() or EVICTION_FORMAT  # version 1 parquet: unmarked
            version = int(meta.get(b"hotbench_version", b"1"))
            frame = pd.read_parquet(path)
        else:
            raise HotbenchError(f"{path}: hotbench reads eviction results from .json or .parquet files")
    except (OSError, ValueError) as e:
        raise HotbenchError(f"cannot read eviction results {path}: {e}") from None
    if fmt != EVICTION_FORMAT or version not in EVICTION_ACCEPTED:
        raise HotbenchError(f"{path}: eviction results format {fmt!r} version {version!r} is not one this "
                            f"hotbench reads ({', '.join(map(str, EVICTION_ACCEPTED))})")
    return frame


# ---------------------------------------------------------------- experiment record

def write_experiment(out: Path, record: dict) -> None:
    write_json(Path(out) / EXPERIMENT, {"format_version": EXPERIMENT_VERSION, **record})


def load_experiment(out: Path) -> dict:
    path = Path(out) / EXPERIMENT
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise HotbenchError(f"{out} is not an experiment output (cannot read {EXPERIMENT}: {e})") from None
    version = record.get("format_version", 0)
    if version not in EXPERIMENT_ACCEPTED:
        raise HotbenchError(f"{path}: experiment format version {version!r} is not one this hotbench reads "
                            f"({', '.join(map(str, EXPERIMENT_ACCEPTED))})")
    return record


# ---------------------------------------------------------------- the nightly store's index

def write_index(history: Path, entries: list[dict]) -> None:
    write_json(Path(history) / INDEX, {"index_version": INDEX_VERSION, "entries": entries})


def load_index(history: Path) -> list[dict]:
    path = Path(history) / INDEX
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise HotbenchError(f"cannot read the history index {path}: {e}") from None
    if data.get("index_version") != INDEX_VERSION:
        raise HotbenchError(f"{path}: index version {data.get('index_version')!r} is not one this hotbench reads "
                            f"({INDEX_VERSION})")
    return data.get("entries", [])


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def command_line() -> list[str]:
    """This process's command as typed: 'hotbench run ...' also for 'python3 -m bench run ...'."""
    name = Path(sys.argv[0]).name
    return ["hotbench" if name == "__main__.py" else name, *sys.argv[1:]]
