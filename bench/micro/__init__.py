"""``hotbench micro``: pyperf micro-benchmarks of every primitive the running kernel has.

``suite`` is the pyperf program (``python -m bench.micro``: manager and workers); ``kit``
the pieces each tracker builds its cases from (``Tracker.micro_cases``), the plain-memory cases
and the table order; ``loops`` the compiled nogil touch loop and RWP fault server that fault
cases (and ``bench.fault_path``) time. Others use the names below.
"""

from bench.micro.suite import (DEFAULT_FAULT_SIZE, DEFAULT_SIZE, FAST_FAULT_SIZE, FAST_SIZE, GIB, UNITS, cases,
                               check_options, main, plan, select, unavailable)

__all__ = ["main", "plan", "cases", "select", "unavailable", "check_options", "GIB", "DEFAULT_SIZE", "FAST_SIZE",
           "DEFAULT_FAULT_SIZE", "FAST_FAULT_SIZE", "UNITS"]
