"""procfs helpers against the running kernel."""

import os
import threading

from bench.kernel import procfs


def test_task_cpu_ns_counts_a_task_in_nanoseconds():
    me = threading.get_native_id()
    before = procfs.task_cpu_ns(me)
    x = 0
    for i in range(200_000):  # some CPU time of this thread
        x += i
    after = procfs.task_cpu_ns(me)
    assert before is not None and after > before
    assert procfs.task_cpu_ns(None) is None and procfs.task_cpu_ns(0) is None
    assert procfs.task_cpu_ns(2 ** 22 + 12345) is None  # above pid_max's default: no such task
    assert procfs.task_cpu_ns(os.getpid()) > 0
