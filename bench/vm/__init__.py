"""``hotbench vm`` and ``hotbench kernel``: boot a kernel under QEMU with this checkout inside.

``launch`` builds the QEMU command line and runs one command in the guest; ``_guest`` writes the
guest's busybox init and run script; ``kernels`` fetches Debian's and builds hotbench's test
kernels into the cache and checks their configs (``kernels.kconfig``). "kernel" elsewhere in
``bench`` means the ABI (``bench.kernel``). Others use the names below.
"""

from bench.vm.launch import (CHECKOUT, VM, LostVMError, VMTimeoutError, check_icount, choose_accel,
                             choose_tcg_threads, find_config, find_modules, kernel_release, mem_mib, numa_layout,
                             numba_cache_dir, qemu_command, run, warm_numba_cache)

__all__ = ["LostVMError", "VMTimeoutError", "VM", "kernel_release", "choose_accel", "choose_tcg_threads",
           "check_icount", "qemu_command", "mem_mib", "numa_layout", "find_modules", "find_config", "numba_cache_dir",
           "warm_numba_cache", "run", "CHECKOUT"]
