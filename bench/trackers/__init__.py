"""Tracker registry: built-ins are the non-underscore modules of this package, each listing its
classes in a module-level ``TRACKERS``; outside packages add theirs through the
``hotbench.trackers`` entry-point group. A module that raises ``TrackerUnavailable`` on
import is recorded with its reason, so ``hotbench run`` can say why it is missing.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from importlib.metadata import entry_points

from bench.errors import HotbenchError
from bench.trackers._base import Observation, Tracker, TrackerUnavailable

__all__ = ["Observation", "Tracker", "TrackerUnavailable", "registry", "get", "broken", "changing_global_state"]

_broken: dict[str, str] = {}


@cache
def registry() -> dict[str, type[Tracker]]:
    found: dict[str, type[Tracker]] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{__name__}.{info.name}")
        except TrackerUnavailable as e:
            _broken[info.name] = str(e)
            continue
        for cls in getattr(module, "TRACKERS", ()):
            found[cls.name] = cls
    for ep in entry_points(group="hotbench.trackers"):
        try:
            cls = ep.load()
        except TrackerUnavailable as e:
            _broken[ep.name] = str(e)
            continue
        found[cls.name] = cls
    return dict(sorted(found.items()))


def broken() -> dict[str, str]:
    registry()
    return dict(_broken)


def get(name: str) -> type[Tracker]:
    trackers = registry()
    if name not in trackers:
        raise HotbenchError(f"unknown tracker {name!r}; choose from: {', '.join(trackers)}")
    return trackers[name]


def changing_global_state(names: list[str] | None = None) -> list[str]:
    """Those of *names* (default: every tracker) that can run here and change global kernel
    state when they do (``Tracker.global_state``): a run of them holds the run lock exclusively."""
    return [n for n in names or registry() if get(n).global_state and not get(n).unavailable()]
