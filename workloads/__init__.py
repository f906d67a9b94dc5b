"""hotbench workloads: seeded access patterns over an arena, with exact ground truth.

    import workloads
    w = workloads.create("zipf:s=1.2,scatter=1", npages=n, page_size=4096, seed=1)
    w.warmup()                          # compile before anything is measured
    checksum = w.run_interval(arena, i) # the measured part: nogil numba threads
    t = w.truth(i)                      # which pages interval i read / wrote

A spec is ``name[:key=value[,key=value...]]``. Patterns are found by scanning this package
(modules without a leading underscore, each naming its classes in ``__all__``), asv style:
a new pattern is a new file. Importing this package is cheap; numba loads on first lookup.
Two loops serve the harness beside the patterns: ``run_for`` (a workload thread touching
batch after batch until a deadline, each batch timed) and ``bare_touch`` (the cheapest loop
doing the same per-access work, the yardstick of the workloads' speed).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any

from workloads._base import COMMON_DEFAULTS, SEED_MAX, Truth, Workload, WorkloadError

__all__ = ["WorkloadError", "Truth", "Workload", "names", "get", "parse_spec", "split_specs", "create",
           "COMMON_DEFAULTS", "SEED_MAX", "check_seeds", "run_for", "bare_touch"]

_LOOPS = {"run_for": "workloads._batches", "bare_touch": "workloads._kernels"}  # numba: loaded when first asked for


def __getattr__(name: str) -> Any:
    if name in _LOOPS:
        return getattr(importlib.import_module(_LOOPS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _registry() -> dict[str, type[Workload]]:
    found: dict[str, type[Workload]] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for attr in getattr(module, "__all__", ()):
            cls = getattr(module, attr)
            if isinstance(cls, type) and issubclass(cls, Workload) and cls.name:
                if cls.name in found:
                    raise RuntimeError(f"workload name {cls.name!r} defined twice "
                                       f"({found[cls.name].__module__}, {cls.__module__})")
                found[cls.name] = cls
    return found


def names() -> list[str]:
    """Registered pattern names, sorted."""
    return sorted(_registry())


def get(name: str) -> type[Workload]:
    """The class registered as *name* (its ``defaults`` and docstring describe it)."""
    registry = _registry()
    if name not in registry:
        raise WorkloadError(f"unknown workload {name!r}; choose from: {', '.join(names())}")
    return registry[name]


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """'zipf:s=1.2,scatter=1' -> ('zipf', {'s': '1.2', 'scatter': '1'}); checks the name
    and the parameter names, not yet the values (create() converts and checks those)."""
    if not isinstance(spec, str) or not spec.strip():
        raise WorkloadError(f"empty workload spec {spec!r}; give a name such as 'uniform' "
                            "or 'zipf:s=1.2'")
    name, _, rest = spec.strip().partition(":")
    cls = get(name.strip())
    params: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq or not key or not value:
            raise WorkloadError(f"{cls.name}: bad parameter {item!r} in spec {spec!r}; "
                                "write key=value, separated by commas")
        if key in params:
            raise WorkloadError(f"{cls.name}: parameter {key!r} given twice in spec {spec!r}")
        params[key] = value
    cls.check_keys(params)
    return cls.name, params


def split_specs(text: str) -> list[str]:
    """'uniform,hotcold:hot=0.2,p=0.8,zipf' -> ['uniform', 'hotcold:hot=0.2,p=0.8', 'zipf']: a
    comma-separated list of specs whose own parameters are comma-separated too (an item with
    '=' and no ':' continues the spec before it)."""
    specs: list[str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if specs and "=" in item and ":" not in item and ":" in specs[-1]:
            specs[-1] += "," + item
        else:
            specs.append(item)
    return specs


def check_seeds(seed: int, repeats: int) -> None:
    """Repeat r of a run uses seed + r: every one of them must be a seed (one uint64)."""
    if seed < 0 or seed + max(repeats, 1) - 1 > SEED_MAX:
        raise WorkloadError(f"--seed {seed}: a seed must be in [0, {SEED_MAX}]" + (
            f", and so must seed + {repeats - 1} (repeat r uses seed + r)" if repeats > 1 else ""))


def create(spec: str, *, npages: int, page_size: int, seed: int, accesses: int | None = None,
           threads: int | None = None, write_ratio: float | None = None) -> Workload:
    """Build the workload *spec* names; explicit arguments override spec parameters."""
    name, params = parse_spec(spec)
    explicit = {"accesses": accesses, "threads": threads, "write_ratio": write_ratio}
    merged: dict[str, Any] = {**params, **{k: v for k, v in explicit.items() if v is not None}}
    return get(name)(npages=npages, page_size=page_size, seed=seed, **merged)
