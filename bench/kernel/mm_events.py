"""The kernel events that explain a tracking mechanism's cost, each defined once.

Tracepoints (stable names, present when their subsystem is built) and kernel functions counted
through kprobes (present when the kernel has the kprobe PMU and the function is neither inlined
nor ``notrace``; names as in the 7.3 sources). Each says what one count is: a call of a
page-table walk callback covers one page table (up to 512 PTEs), not one page. Tracker classes
pick theirs in ``kernel_events``; ``bench.attribution.COMMON`` is counted for every tracker.
"""

from __future__ import annotations

from bench.kernel.perf_event import (TLB_LOCAL_MM_SHOOTDOWN, TLB_LOCAL_SHOOTDOWN, TLB_REMOTE_SEND_IPI,
                                     TLB_REMOTE_SHOOTDOWN, Kprobe, Tracepoint)

SIGSEGV = 11

# ---- every phase (arch/x86/include/asm/trace/exceptions.h, include/trace/events/tlb.h, ipi.h)
FAULT_USER = Tracepoint("exceptions", "page_fault_user", "fault_user", "page fault taken in user mode")
FAULT_KERNEL = Tracepoint("exceptions", "page_fault_kernel", "fault_kernel",
                          "page fault taken in kernel mode (e.g. copy_to_user into an unmapped page)")
TLB_LOCAL_MM = Tracepoint("tlb", "tlb_flush", "tlb_local_mm", "TLB flush of a range of this mm on this CPU",
                          filter=f"reason == {TLB_LOCAL_MM_SHOOTDOWN}")
TLB_LOCAL = Tracepoint("tlb", "tlb_flush", "tlb_local", "local TLB shootdown not tied to one mm (batched reclaim)",
                       filter=f"reason == {TLB_LOCAL_SHOOTDOWN}")
TLB_IPI_SENT = Tracepoint("tlb", "tlb_flush", "tlb_ipi_sent", "TLB flush that had to interrupt other CPUs (sender)",
                          filter=f"reason == {TLB_REMOTE_SEND_IPI}")
TLB_REMOTE = Tracepoint("tlb", "tlb_flush", "tlb_remote", "TLB shootdown received from another CPU",
                        filter=f"reason == {TLB_REMOTE_SHOOTDOWN}")
IPI_CPU = Tracepoint("ipi", "ipi_send_cpu", "ipi_cpu", "IPI sent to one CPU (TLB shootdown, function call, wake-up)")
IPI_CPUMASK = Tracepoint("ipi", "ipi_send_cpumask", "ipi_cpumask", "IPI sent to a set of CPUs")

# ---- protections and page-table walks (mm/mprotect.c, mm/memory.c, fs/proc/task_mmu.c)
CHANGE_PROTECTION = Kprobe("change_protection", "change_protection",
                           "change_protection call: one VMA's range re-protected (mprotect, RWPROTECT)")
CHANGE_PTE_RANGE = Kprobe("change_pte_range", "change_pte_range",
                          "change_protection step over one page table (up to 512 PTEs)")
ZAP_PTE_RANGE = Kprobe("zap_pte_range", "zap_pte_range", "zap of one page table's PTEs (MADV_DONTNEED, munmap)")
FOLIO_REMOVE_RMAP_PTES = Kprobe("folio_remove_rmap_ptes", "pages_unmapped",
                                "PTEs of one folio unmapped by a zap (one per 4 KiB page of small folios)")
PAGEMAP_SCAN_PMD = Kprobe("pagemap_scan_pmd_entry", "pagemap_scan_pmd",
                          "PAGEMAP_SCAN walk of one page table (up to 512 PTEs)")
MAKE_UFFD_WP_PTE = Kprobe("make_uffd_wp_pte", "ptes_wp", "PTE write-protected by PAGEMAP_SCAN(PM_SCAN_WP_MATCHING)")
CLEAR_REFS_PTE_RANGE = Kprobe("clear_refs_pte_range", "clear_refs_pmd",
                              "clear_refs walk of one page table (soft-dirty or Accessed bits cleared)")
SMAPS_PTE_RANGE = Kprobe("smaps_pte_range", "smaps_pmd", "smaps walk of one page table")
SIGSEGV_SENT = Tracepoint("signal", "signal_generate", "sigsegv", "SIGSEGV generated (one per protection fault)",
                          filter=f"sig == {SIGSEGV}")

# ---- userfaultfd (mm/userfaultfd.c)
HANDLE_USERFAULT = Kprobe("handle_userfault", "handle_userfault",
                          "fault handed to userfaultfd (a synchronous fault a handler must resolve)")
MFILL_CONTINUE = Kprobe("mfill_atomic_continue", "uffdio_continue", "UFFDIO_CONTINUE call (maps one faulted range)")
MRWPROTECT_RANGE = Kprobe("mrwprotect_range", "uffdio_rwprotect", "UFFDIO_RWPROTECT call")

# ---- shared memory faults (mm/shmem.c, mm/filemap.c)
SHMEM_FAULT = Kprobe("shmem_fault", "shmem_fault", "shmem page fault (one page found in the page cache)")
FILEMAP_MAP_PAGES = Tracepoint("filemap", "mm_filemap_map_pages", "fault_around",
                               "fault-around batch (filemap_map_pages: up to 16 pages mapped at once)")

# ---- reverse map (mm/rmap.c, mm/page_idle.c)
RMAP_WALK = Kprobe("rmap_walk", "rmap_walk", "rmap walk of one folio (every PTE that maps it)")
PAGE_IDLE_PTE_REFS = Kprobe("page_idle_clear_pte_refs_one", "page_idle_pte_refs",
                            "one mapping of a folio checked and its Accessed bit cleared (idle page tracking)")
# The rmap walk as a callchain shows it (mm/rmap.c): rmap_walk() and the walkers it picks by the
# folio's kind, and idle page tracking's per-mapping callback (mm/page_idle.c) — a sample with
# any of these in its callchain was spent walking a folio's reverse map.
RMAP_WALK_FUNCTIONS = ("rmap_walk", "rmap_walk_locked", "rmap_walk_anon", "rmap_walk_file", "__rmap_walk_file",
                       "rmap_walk_ksm", "page_idle_clear_pte_refs_one")
FOLIO_REFERENCED = Kprobe("folio_referenced", "folio_referenced", "folio_referenced call (rmap walk for reclaim)")
PTEP_TEST_AND_CLEAR_YOUNG = Kprobe("ptep_test_and_clear_young", "young_cleared",
                                   "Accessed bit of one PTE tested and cleared")

# ---- MGLRU aging (mm/vmscan.c)
TRY_TO_INC_MAX_SEQ = Kprobe("try_to_inc_max_seq", "mglru_aging", "MGLRU aging pass of one lruvec")
WALK_PMD_RANGE = Kprobe("walk_pmd_range", "mglru_walk_pmd", "MGLRU aging walk over one PUD's page tables")
FOLIO_INC_GEN = Kprobe("folio_inc_gen", "mglru_folio_promoted",
                       "folio found young by MGLRU aging and moved to the youngest generation")
LRU_GEN_LOOK_AROUND = Kprobe("lru_gen_look_around", "mglru_look_around",
                             "MGLRU look-around from an rmap hit (neighbouring PTEs checked)")

# ---- DAMON (mm/damon/vaddr.c, paddr.c, ops-common.c; include/trace/events/damon.h)
DAMON_AGGREGATED = Tracepoint("damon", "damon_aggregated", "damon_regions",
                              "region reported at the end of an aggregation interval")
DAMON_VA_YOUNG = Kprobe("damon_young_pmd_entry", "damon_va_check",
                        "vaddr access check of one region's sampled page (page-table walk step)")
DAMON_VA_MKOLD = Kprobe("damon_mkold_pmd_entry", "damon_va_mkold",
                        "vaddr Accessed-bit clear of one region's sampled page (page-table walk step)")
DAMON_FOLIO_YOUNG = Kprobe("damon_folio_young", "damon_pa_check", "paddr access check of one sampled folio (rmap walk)")
DAMON_FOLIO_MKOLD = Kprobe("damon_folio_mkold", "damon_pa_mkold",
                           "paddr Accessed-bit clear of one sampled folio (rmap walk)")

COMMON = (FAULT_USER, FAULT_KERNEL, TLB_LOCAL_MM, TLB_LOCAL, TLB_IPI_SENT, TLB_REMOTE, IPI_CPU, IPI_CPUMASK)
