"""``hotbench nightly``: the fixed, versioned suite run every night and appended to a history store.

Public modules: ``run`` runs a suite on this kernel (``run_nightly``, ``estimate_seconds``);
``suite`` reads the versioned TOML suites (``bench/suites/``); ``store`` is the history store
that ``hotbench history`` and ``compare`` read (index, series, run lookup); ``guests`` runs a
suite inside ``hotbench vm`` guests of cached kernels. The face hands on what readers of a
history need without loading the runner.
"""

from bench.nightly.store import default_history_dir, machine_label
from bench.nightly.suite import DEFAULT_SUITE, Suite, load_suite

__all__ = ["DEFAULT_SUITE", "Suite", "load_suite", "default_history_dir", "machine_label"]
