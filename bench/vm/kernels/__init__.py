"""Test kernels for ``hotbench vm``: fetched from Debian (``debian.py``) or built from source
with the project's kconfig fragment (``build.py``), cached by content under
``~/.cache/hotbench/kernels/<key>/``. An entry holds ``vmlinuz``, ``config``, ``meta.json``
and, for modular kernels, ``lib/modules/<release>/`` (with ``modules.dep``).

An entry appears only once complete (it is assembled in a temporary directory and
renamed), so an interrupted fetch or build leaves nothing half-made behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.errors import HotbenchError
from bench.vm.kernels import kconfig

__all__ = ["Kernel", "cache_dir", "entries", "lookup", "load_entry", "new_entry", "Stopwatch"]


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/hotbench`` (default ``~/.cache/hotbench``), as platformdirs says."""
    import platformdirs

    return platformdirs.user_cache_path("hotbench")


def kernels_dir() -> Path:
    return cache_dir() / "kernels"


@dataclass(frozen=True)
class Kernel:
    """One cached kernel."""

    path: Path
    meta: dict

    @property
    def key(self) -> str:
        return self.path.name

    @property
    def image(self) -> Path:
        return self.path / "vmlinuz"

    @property
    def config(self) -> Path:
        return self.path / "config"

    @property
    def release(self) -> str:
        return self.meta.get("release", "?")

    def mechanisms(self) -> list[str]:
        """Mechanisms this kernel's config enables (``Tracker.kconfig`` of each)."""
        try:
            return kconfig.mechanisms(kconfig.read_config(self.config))
        except OSError:
            return []


def _load(path: Path) -> Kernel | None:
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return Kernel(path, meta) if (path / "vmlinuz").is_file() else None


def entries() -> list[Kernel]:
    """Every complete cache entry, oldest first."""
    root = kernels_dir()
    if not root.is_dir():
        return []
    found = [_load(p) for p in root.iterdir() if not p.name.startswith(".")]  # ".key.*": being made
    return sorted((k for k in found if k), key=lambda k: k.meta.get("created", 0))


def lookup(key: str) -> Kernel | None:
    return _load(kernels_dir() / key) if key and "/" not in key else None


def load_entry(path: Path) -> Kernel | None:
    """The cache entry at *path* (a directory 'kernel fetch' or 'build' printed), or None."""
    return _load(Path(path))


@contextmanager
def new_entry(key: str, meta: dict) -> Iterator[Path]:
    """A scratch directory that becomes entry *key* (with *meta*, updated in place by the
    caller) when the block ends without error; removed otherwise."""
    root = kernels_dir()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    tmp.chmod(0o755)
    try:
        yield tmp
        meta.setdefault("created", time.time())
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        final = root / key
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class Stopwatch:
    """Prints each stage's duration on stderr: ``kernel fetch: download 3.1 s``."""

    def __init__(self, what: str, stream=None):
        import sys

        self.what, self.stream = what, stream or sys.stderr
        self.stages: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        yield
        self.stages[name] = time.monotonic() - start
        print(f"{self.what}: {name} {_fmt(self.stages[name])}", file=self.stream, flush=True)

    def say(self, text: str) -> None:
        print(f"{self.what}: {text}", file=self.stream, flush=True)


def _fmt(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise HotbenchError(f"{', '.join(missing)} not found: run tools/setup-system (Debian packages)")
