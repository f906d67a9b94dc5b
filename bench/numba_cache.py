"""Where numba keeps what it compiles: every hotbench process (the CLI, pyperf's micro workers)
makes sure it has a writable cache before the first ``cache=True`` function is compiled."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["ensure_writable"]


def ensure_writable() -> None:
    """Give numba a writable cache when the checkout is not ours (a user running a root-owned install).

    Without one, numba refuses to compile ``cache=True`` functions at import time.
    """
    if "NUMBA_CACHE_DIR" in os.environ or os.access(Path(__file__).resolve().parents[1] / "workloads", os.W_OK):
        return
    import platformdirs

    for base in (platformdirs.user_cache_dir(), tempfile.gettempdir()):
        if not base:
            continue
        target = Path(base) / f"hotbench-numba-{os.getuid()}"
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(target, os.W_OK):
            os.environ["NUMBA_CACHE_DIR"] = str(target)
            return
