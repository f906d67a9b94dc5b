"""The names of hotbench's figures and the data each needs — importable without pandas or
matplotlib, so ``hotbench plot --help`` stays fast. Builders live in ``analysis.figures``."""

from __future__ import annotations

# (name, what it needs), in the order figures are drawn and listed
FIGURES: list[tuple[str, str]] = [
    ("accuracy-vs-interval", "lockstep rows of page/region trackers at two or more interval lengths "
                             "(workload_params 'accesses' per interval)"),
    ("precision-recall", "lockstep rows with tp/fp/fn (page or region trackers)"),
    ("wss-timeline", "lockstep rows with wss_est, truth_any, truth_written per interval"),
    ("cost-vs-size", "lockstep rows at two or more arena sizes (arm_ns, collect_ns; e.g. --size 64M,256M,1G)"),
    ("pareto", "lockstep rows with tp/fp/fn/tn (f1 against all accesses) and arm_cpu_ns, collect_cpu_ns"),
    ("pareto-slowdown", "concurrent rows (mode 'concurrent', slowdown) and lockstep accuracy of the same "
                        "tracker x workload"),
    ("heatmap", "pages.parquet: per-page truth and tracker bitmaps per interval (page trackers; 'hotbench run "
                "--pages')"),
    ("fault-cost-cdf", "pyperf micro*.json with per-fault benchmarks (a name containing 'fault')"),
    ("stall-cdf", "latency.parquet: batch_ns of concurrent runs ('hotbench run --mode concurrent')"),
    ("eviction-timeline", "eviction.parquet: rows of 'hotbench evict' (variant, round, evicted_pages, refaults, "
                          "lat_p99_ns, blocked_ns_max)"),
]
NAMES = [name for name, _ in FIGURES]
# figures with a time axis: drawn once per clock (instruction counts and ns never share an axis)
TIMING = {"cost-vs-size", "pareto", "fault-cost-cdf", "stall-cdf", "eviction-timeline"}
FORMATS = ("png", "svg", "pdf")
