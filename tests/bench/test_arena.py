import numpy as np
import pytest

from bench import arena
from bench.errors import HotbenchError
from bench.kernel import pagemap


@pytest.mark.parametrize("text,value", [("64M", 64 << 20), ("4G", 4 << 30), ("256MiB", 256 << 20), ("4096", 4096),
                                        ("1.5G", 3 << 29), (8192, 8192)])
def test_parse_size(text, value):
    assert arena.parse_size(text) == value


@pytest.mark.parametrize("text", ["", "lots", "4X", "-1M"])
def test_parse_size_rejects(text):
    with pytest.raises(HotbenchError, match="bad size"):
        arena.parse_size(text)


def _present_categories(a):
    with pagemap.Scanner() as scanner:
        return scanner.scan(a.addr, a.end, category_mask=pagemap.PAGE_IS_PRESENT,
                            return_mask=pagemap.PAGE_IS_PRESENT | pagemap.PAGE_IS_FILE | pagemap.PAGE_IS_HUGE)


@pytest.mark.parametrize("backing", ["anon", "shmem"])
def test_backings_prefaulted_4k(backing):
    with arena.Arena("8M", backing) as a:
        regions = _present_categories(a)
        assert pagemap.regions_to_bitmap(regions, a.addr, a.npages).all(), "prefault left holes"
        assert not (regions["categories"] & pagemap.PAGE_IS_HUGE).any(), "4 KiB pages were asked for"
        shared = bool(regions["categories"][0] & pagemap.PAGE_IS_FILE)
        assert shared == (backing == "shmem") and (a.fd >= 0) == (backing == "shmem")
        a.view[:] = 3
        assert int(a.view.sum()) == 3 * a.size
        assert a.huge_bytes() == 0


def test_thp_backing_is_huge():
    reason = arena.backing_unavailable("thp")
    if reason:
        pytest.skip(reason)
    with arena.Arena("8M", "thp") as a:
        assert a.addr % (2 << 20) == 0
        regions = _present_categories(a)
        huge = regions["categories"] & pagemap.PAGE_IS_HUGE != 0
        # what the runner records is what PAGEMAP_SCAN sees mapped huge
        assert a.huge_bytes() == int((regions["end"] - regions["start"])[huge].sum())
        if not huge.any():
            pytest.skip("THP allowed but no huge page could be allocated now (fragmentation)")


def test_hugetlb_unavailable_reason_names_the_knob():
    reason = arena.backing_unavailable("hugetlb", 1 << 40)
    assert reason and "nr_hugepages" in reason


def test_size_checks():
    with pytest.raises(HotbenchError, match="multiple"):
        arena.Arena(4096 * 3, "thp") if not arena.backing_unavailable("thp") else arena.Arena(100, "anon")
    with pytest.raises(HotbenchError, match="does not fit"):
        arena.Arena("16T", "anon")


def test_close_is_idempotent():
    a = arena.Arena("1M", "shmem")
    a.close()
    a.close()
    assert a.addr == 0 and a.fd == -1


@pytest.mark.parametrize("backing", ["anon", "shmem"])
def test_repopulate_frees_and_refaults(backing):
    with arena.Arena("4M", backing) as a:
        a.view[:] = 7
        a.repopulate()
        assert int(a.view.sum()) == 0
        with pagemap.Scanner() as scanner:
            regions = scanner.scan(a.addr, a.end, category_mask=pagemap.PAGE_IS_PRESENT,
                                   return_mask=pagemap.PAGE_IS_PRESENT)
        assert pagemap.regions_to_bitmap(regions, a.addr, a.npages).all()
