"""Tracker registry: built-ins are the non-underscore modules of this package, each listing its
classes in a module-level ``TRACKERS``; outside packages add theirs through the
``hotbench.trackers`` entry-point group. A module that raises ``TrackerUnavailable`` on
import is recorded with its reason, so ``hotbench run`` can say why it is missing.

Every table about mechanisms is derived from here, never kept beside it: the mechanisms and
their probes (``mechanisms``, ``probe``, ``probe_all``), plot styles (``styles``), cost
models (``cost_models``); ``bench.vm.kernels.kconfig``, ``bench.harness``, ``bench.interference``
and ``bench.micro`` read the other facts off the classes (``Tracker``).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from functools import cache
from importlib.metadata import entry_points

from bench.errors import HotbenchError
from bench.trackers._base import (ALL, BEFORE, FIRST, LATER, REPORTED, RUNS, CostMatch, Observation, RawPrimitive,
                                  Tracker, TrackerUnavailable)

__all__ = ["Observation", "Tracker", "TrackerUnavailable", "RawPrimitive", "CostMatch", "registry", "get", "broken",
           "changing_global_state", "in_order", "mechanisms", "probe", "probe_all", "styles", "cost_models",
           "ALL", "FIRST", "LATER", "REPORTED", "BEFORE", "RUNS"]

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
    return {name: cls for name, cls in sorted(found.items()) if not _refused(cls, found)}


def _refused(cls: type[Tracker], found: dict[str, type[Tracker]]) -> bool:
    """Record why *cls* cannot be registered (a fact missing, or its mechanism's facts differ
    from those of the first tracker of that mechanism); False when it can."""
    missing = [fact for fact in ("name", "mechanism", "kernel_probe") if not hasattr(cls, fact)]
    if missing:
        _broken[getattr(cls, "name", cls.__qualname__)] = f"{cls.__qualname__} declares no {', '.join(missing)}"
        return True
    first = min((c for c in found.values() if getattr(c, "mechanism", None) == cls.mechanism and
                 hasattr(c, "kernel_probe")), key=_rank)
    for fact in ("kernel_probe", "kconfig"):
        if getattr(cls, fact) != getattr(first, fact):
            _broken[cls.name] = (f"its {fact} differs from that of {first.name}, the first tracker of mechanism "
                                 f"{cls.mechanism!r}")
            return True
    return False


def _rank(cls: type[Tracker]) -> tuple[int, str]:
    return cls.order, cls.name


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


def in_order() -> list[type[Tracker]]:
    """Every tracker in listing order (``Tracker.order``, then name): probe rows, figure legends."""
    return sorted(registry().values(), key=_rank)


def mechanisms() -> dict[str, type[Tracker]]:
    """Mechanism -> its first tracker in listing order (which carries the mechanism's probe and
    kernel config), in the order ``hotbench probe`` lists them."""
    out: dict[str, type[Tracker]] = {}
    for cls in in_order():
        out.setdefault(cls.mechanism, cls)
    return out


def probe(mechanism: str):
    """The ``bench.kernel.probe.Probe`` verdict for *mechanism*, computed once per process."""
    known = mechanisms()
    if mechanism not in known:
        raise HotbenchError(f"unknown mechanism {mechanism!r}; choose from {', '.join(known)}")
    return known[mechanism].probe()


def probe_all() -> dict:
    """Every mechanism's verdict, in listing order."""
    return {name: cls.probe() for name, cls in mechanisms().items()}


def styles() -> dict[str, tuple[str, str]]:
    """Tracker -> (colour, marker) as its class declares it (colour: an ``analysis.style.OKABE_ITO``
    name or "#rrggbb"), in legend order; trackers that declare none are left out."""
    return {cls.name: cls.style for cls in in_order() if cls.style}


def cost_models() -> tuple[CostMatch, ...]:
    """Every tracker's cost model (``Tracker.cost_model``), each match naming its tracker."""
    return tuple(dataclasses.replace(m, tracker=cls.name) for cls in in_order() for m in cls.cost_model)
