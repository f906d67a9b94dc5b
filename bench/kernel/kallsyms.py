"""Kernel addresses to function names through ``/proc/kallsyms`` (kernel/kallsyms.c).

Each line is ``address type name [module]``; the text symbols (type ``t``/``T``, functions) are
kept, sorted by address, and an address belongs to the nearest symbol at or below it. The file
shows real addresses only to a reader the kernel trusts (``kptr_restrict`` 0, or 1 with
CAP_SYSLOG: root); otherwise every address reads as zero and ``Symbols.load`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.kernel import procfs

__all__ = ["KALLSYMS", "KPTR_RESTRICT", "UNKNOWN", "Symbols"]

KALLSYMS = "/proc/kallsyms"
KPTR_RESTRICT = "/proc/sys/kernel/kptr_restrict"
UNKNOWN = "[unknown]"  # an address below the first text symbol


@dataclass(frozen=True)
class Symbols:
    """Text symbols sorted by address; symbols of one name (static functions of several files
    may share one) share one id, so a function is counted once per callchain."""

    addresses: np.ndarray  # uint64, ascending
    ids: np.ndarray  # int64: each address's index into names
    names: np.ndarray  # object (str), each name once

    @classmethod
    def parse(cls, text: str) -> Symbols:
        addresses, names = [], []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] in ("t", "T"):
                addresses.append(int(parts[0], 16))
                names.append(parts[2])
        order = np.argsort(np.array(addresses, np.uint64), kind="stable")
        unique, ids = np.unique(np.array(names, object)[order], return_inverse=True)
        return cls(np.array(addresses, np.uint64)[order], ids.astype(np.int64), unique)

    @classmethod
    def load(cls, path: str = KALLSYMS) -> tuple[Symbols | None, str | None]:
        """(this kernel's symbols, None), or (None, why they cannot be had)."""
        text = procfs.read_text(path)
        if not text:
            return None, procfs.config_reason(f"no {path}", "CONFIG_KALLSYMS")
        symbols = cls.parse(text)
        if not len(symbols.addresses) or not symbols.addresses.any():
            restrict = procfs.read_text(KPTR_RESTRICT)
            return None, f"{path} shows no addresses (kernel.kptr_restrict is {restrict}; needs root with CAP_SYSLOG)"
        return symbols, None

    def lookup(self, addresses: np.ndarray) -> np.ndarray:
        """The name id (index into ``names``) of the function holding each address; -1 below the first."""
        at = np.searchsorted(self.addresses, np.asarray(addresses, np.uint64), side="right").astype(np.int64) - 1
        return np.where(at >= 0, self.ids[np.maximum(at, 0)], -1)

    def ids_of(self, names: tuple[str, ...]) -> np.ndarray:
        """The ids of those of *names* this kernel has."""
        return np.flatnonzero(np.isin(self.names, list(names)))

    def name(self, index: int) -> str:
        return UNKNOWN if index < 0 else str(self.names[index])
