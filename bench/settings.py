"""Run-level kernel settings the list asked about (interplay switches): MGLRU on/off for
idle page tracking, NUMA balancing on/off for RWP, THP mode. Set for the run through
``sysfs.Knobs`` (restored afterwards, also on errors and signals) and recorded in the
manifest, so a result always says which regime it was measured under.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from bench.errors import HotbenchError
from bench.kernel import mglru, sysfs

# name -> (knob path, {choice: value written})
SETTINGS: dict[str, tuple[str, dict[str, str]]] = {
    "mglru": (mglru.LRU_GEN_ENABLED, {"on": "y", "off": "n"}),
    "numa-balancing": ("/proc/sys/kernel/numa_balancing", {"on": "1", "off": "0"}),
    "thp": ("/sys/kernel/mm/transparent_hugepage/enabled", {c: c for c in ("always", "madvise", "never")}),
}


def validate(requested: dict[str, str]) -> None:
    for name, choice in requested.items():
        path, choices = SETTINGS[name]
        if choice not in choices:
            raise HotbenchError(f"--{name} must be one of {', '.join(choices)}, got {choice!r}")
        if not os.path.exists(path):
            raise HotbenchError(f"--{name}: {path} does not exist on this kernel; drop the option or use a kernel "
                                f"that has it (see 'hotbench probe')")
        if os.geteuid() != 0:
            raise HotbenchError(f"--{name} changes {path} and needs root: run as root")


@contextmanager
def applied(requested: dict[str, str]) -> Iterator[dict]:
    """Apply *requested* settings for the duration; yields the manifest record {name: {set, was, path}}."""
    validate(requested)
    paths = [SETTINGS[name][0] for name in requested]
    record = {}
    with sysfs.Knobs(paths) as knobs:
        for name, choice in requested.items():
            path, choices = SETTINGS[name]
            was = sysfs.read(path)
            try:
                knobs.write(path, choices[choice])
            except OSError as e:
                raise HotbenchError(f"--{name} {choice}: cannot write {path}: {e.strerror}") from None
            record[name] = {"set": choice, "was": was, "now": sysfs.read(path), "path": path}
        yield record
