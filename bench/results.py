"""Results directories: ``<out>/<run-id>/manifest.json`` + ``samples.parquet``.

Format history (``FORMAT_VERSION`` is stamped in every manifest; loaders accept the
versions in ``ACCEPTED`` and refuse any other by name):
  1  2026-11  first format: manifest (environment, probes, cells, skips) and one
              samples row per cell x interval.
  2  2026-11  optional files: latency.parquet (concurrent mode: every batch's duration)
              and pages.parquet/ (a directory, one part per cell: per-interval bitmaps of
              truth and observation, np.packbits little-endian, for heatmaps).

Every file is written to a temporary name in the same directory and renamed into
place, so a run interrupted at any moment leaves the previous complete version of
each file: valid partial results, never a torn file. A run directory is never reused.
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

FORMAT_VERSION = 2
ACCEPTED = (1, 2)
MANIFEST = "manifest.json"
SAMPLES = "samples.parquet"
PAGES = "pages.parquet"  # a directory of per-cell parts
LATENCY = "latency.parquet"  # concurrent mode: every batch's duration, per cell, pair and variant


def new_run_id() -> str:
    """Sortable and unique enough across machines: UTC time, host, pid."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{stamp}-{socket.gethostname().split('.')[0]}-{os.getpid()}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_manifest(run_dir: Path, manifest: dict) -> None:
    manifest = {"format_version": FORMAT_VERSION, **manifest}
    atomic_write_bytes(run_dir / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n").encode())


def _write_parquet(path: Path, rows: list[dict]) -> None:
    import io

    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


def write_samples(run_dir: Path, rows: list[dict]) -> None:
    _write_parquet(run_dir / SAMPLES, rows)


def write_latencies(run_dir: Path, rows: list[dict]) -> None:
    _write_parquet(run_dir / LATENCY, rows)


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
    (run_dir / PAGES).mkdir(exist_ok=True)
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf)
    atomic_write_bytes(run_dir / PAGES / f"cell-{cell_number:05d}.parquet", buf.getvalue())


def create_run_dir(out: Path, run_id: str) -> Path:
    run_dir = out / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        from bench.errors import HotbenchError
        raise HotbenchError(f"results directory {run_dir} already exists; hotbench never overwrites a run") from None
    except OSError as e:
        from bench.errors import HotbenchError
        raise HotbenchError(f"cannot create results directory {run_dir}: {e.strerror}; choose another --out") from None
    return run_dir


def load_manifest(run_dir: Path) -> dict:
    from bench.errors import HotbenchError

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
    import pandas as pd

    load_manifest(run_dir)
    path = Path(run_dir) / SAMPLES
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def command_line() -> list[str]:
    return [Path(sys.argv[0]).name, *sys.argv[1:]]
