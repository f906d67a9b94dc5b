"""rwp-rfc: the April-2026 RFC ABI — untested on a live kernel (none implements it).

Pure tier only: the encodings against the documented values (kernel-interfaces.md §0.1,
§1.2, §9.1) and the exact ioctls, struct contents and order the tracker issues, recorded by a
fake ioctl door that answers as the documentation says. No test here claims the tracker
works on a kernel; the live check is probe ``rwp-rfc``'s, and the runner plans the tracker
only when that probe passes.
"""

import ctypes
import os

import numpy as np
import pytest

from bench.arena import Arena
from bench.kernel import pagemap, uffd, uffd_rfc
from bench.kernel.probe import Probe
from bench.trackers import TrackerUnavailable
from bench.trackers import rwp_rfc as rwp_rfc_module
from bench.trackers.rwp_rfc import RwpRfcTracker
from tests.trackers._fake_ioctl import FakeKernel

PAGE = 4096


def test_documented_encodings():
    assert uffd_rfc.UFFD_FEATURE_MINOR_ANON == 0x20000 and uffd_rfc.UFFD_FEATURE_MINOR_ASYNC == 0x40000
    assert uffd_rfc.UFFDIO_DEACTIVATE == 0x8010AA09  # _IOR(0xAA, 0x09, struct uffdio_range)
    assert uffd_rfc.UFFDIO_SET_MODE == 0x4010AA0A  # _IOW(0xAA, 0x0A, struct uffdio_set_mode)
    assert ctypes.sizeof(uffd.uffdio_range) == 16 and ctypes.sizeof(uffd.uffdio_set_mode) == 16
    assert uffd.uffdio_set_mode.enable.offset == 0 and uffd.uffdio_set_mode.disable.offset == 8
    assert uffd_rfc.PAGE_IS_UFFD_DEACTIVATED == 0x200 and pagemap.PAGE_IS_PRESENT == 0x8
    assert uffd.UFFDIO_REGISTER_MODE_MINOR == 4 and uffd.UFFD_PAGEFAULT_FLAG_MINOR == 4
    assert uffd.UFFDIO_CONTINUE == 0xC020AA07 and pagemap.PAGEMAP_SCAN == 0xC0606610
    # Same numbers as 7.3's RWP with other meanings: the tracker must use the RFC's.
    assert uffd_rfc.UFFDIO_DEACTIVATE != uffd.UFFDIO_RWPROTECT


def test_labelled_untested():
    assert "untested on a live kernel" in RwpRfcTracker.summary
    assert "untested on a live kernel" in RwpRfcTracker.__doc__
    assert "untested on a live kernel" in rwp_rfc_module.__doc__.splitlines()[0]
    reason = RwpRfcTracker.unavailable()
    if reason is not None:  # every kernel we have: the probe says why, and says untested
        assert "untested on a live kernel" in reason


def _proved(monkeypatch):
    monkeypatch.setattr(RwpRfcTracker, "probe", classmethod(lambda cls: Probe(True, "faked for a unit test", {})))


def test_exact_ioctl_sequence(monkeypatch):
    _proved(monkeypatch)
    with Arena("1M", "anon") as a:
        kernel = FakeKernel(granted_features=0x7FFFF, range_ioctls=0x3BC,
                            scan_regions=[(a.addr + 2 * PAGE, a.addr + 5 * PAGE, pagemap.PAGE_IS_PRESENT),
                                          (a.addr + 9 * PAGE, a.addr + 10 * PAGE, pagemap.PAGE_IS_PRESENT)])
        kernel.install(monkeypatch)
        t = RwpRfcTracker()
        try:
            t.start(a)
            t.arm()
            obs = t.collect()
            t.set_sync()
            t.resolve(a.addr + 7 * PAGE, PAGE)
            t.set_async()
        finally:
            t.stop()
        (number, flags, _), = kernel.syscalls
        assert number == 323 and flags == os.O_CLOEXEC | os.O_NONBLOCK  # userfaultfd(2), not user-mode-only
        uffd_fd = kernel.fds[0]
        seq = [(c.name, c.request, c.size) for c in kernel.calls]
        assert seq == [
            ("UFFDIO_API", 0xC018AA3F, 24),
            ("UFFDIO_REGISTER", 0xC020AA00, 32),
            ("UFFDIO_DEACTIVATE", 0x8010AA09, 16),
            ("PAGEMAP_SCAN", 0xC0606610, 96),
            ("UFFDIO_SET_MODE", 0x4010AA0A, 16),
            ("UFFDIO_CONTINUE", 0xC020AA07, 32),
            ("UFFDIO_SET_MODE", 0x4010AA0A, 16),
        ]
        api, reg, deact, scan, sync, cont, async_ = (c.args for c in kernel.calls)
        assert api == {"api": 0xAA, "features": 0x60000, "ioctls": 0}
        assert reg == {"range.start": a.addr, "range.len": a.size, "mode": 0x4, "ioctls": 0}
        assert deact == {"start": a.addr, "len": a.size}
        assert {k: scan[k] for k in ("size", "flags", "start", "end", "max_pages", "category_inverted",
                                     "category_mask", "category_anyof_mask", "return_mask")} == {
            "size": 96, "flags": 0, "start": a.addr, "end": a.end, "max_pages": 0,
            "category_inverted": 0x200, "category_mask": 0x208, "category_anyof_mask": 0, "return_mask": 0x8}
        assert sync == {"enable": 0, "disable": 0x40000} and async_ == {"enable": 0x40000, "disable": 0}
        assert cont == {"range.start": a.addr + 7 * PAGE, "range.len": PAGE, "mode": 0, "mapped": 0}
        assert all(c.fd == uffd_fd for c in kernel.calls if c.name != "PAGEMAP_SCAN")
        assert kernel.named("PAGEMAP_SCAN")[0].fd != uffd_fd
        assert not kernel.named("UFFDIO_RWPROTECT")  # never the 7.3 ioctl with the same nr
        expected = np.zeros(a.npages, bool)
        expected[[2, 3, 4, 9]] = True
        assert (obs.accessed == expected).all()
        with pytest.raises(OSError):
            os.fstat(uffd_fd)  # stop closed the userfaultfd


def test_refuses_when_the_probe_has_not_proved_the_abi(monkeypatch):
    monkeypatch.setattr(RwpRfcTracker, "probe", classmethod(lambda cls: Probe(False, "bits 17/18 are the 7.3 RWP ABI here",
                                                                              {})))
    kernel = FakeKernel(granted_features=0x7FFFF).install(monkeypatch)
    with Arena("1M", "anon") as a:
        t = RwpRfcTracker()
        with pytest.raises(TrackerUnavailable, match="7.3 RWP ABI"):
            t.start(a)
        t.stop()
    assert kernel.calls == [] and kernel.syscalls == []  # not one ioctl on an unproven ABI


def test_refuses_shared_memory(monkeypatch):
    _proved(monkeypatch)
    kernel = FakeKernel(granted_features=0x7FFFF).install(monkeypatch)
    with Arena("1M", "shmem") as a:
        with pytest.raises(TrackerUnavailable, match="private anonymous"):
            RwpRfcTracker().start(a)
    assert kernel.calls == []
    assert RwpRfcTracker.backings == ("anon",)


def test_refuses_when_features_not_granted(monkeypatch):
    _proved(monkeypatch)
    kernel = FakeKernel(granted_features=0x1FFFF).install(monkeypatch)
    with Arena("1M", "anon") as a:
        t = RwpRfcTracker()
        with pytest.raises(TrackerUnavailable, match="MINOR_ANON"):
            t.start(a)
        t.stop()
    assert [c.name for c in kernel.calls] == ["UFFDIO_API"]
    with pytest.raises(OSError):
        os.fstat(kernel.fds[0])
