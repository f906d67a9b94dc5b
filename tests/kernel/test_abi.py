"""The ABI constants against the documented values and, where installed, the uapi headers."""

import ctypes
import shutil
import subprocess

import pytest

from bench.kernel import pagemap, uffd, uffd_rfc

# From shared/reference/kernel-interfaces.md §0.1 (asm-generic encoding).
DOCUMENTED = {
    "UFFDIO_REGISTER": 0xC020AA00, "UFFDIO_UNREGISTER": 0x8010AA01, "UFFDIO_WAKE": 0x8010AA02,
    "UFFDIO_COPY": 0xC028AA03, "UFFDIO_ZEROPAGE": 0xC020AA04, "UFFDIO_WRITEPROTECT": 0xC018AA06,
    "UFFDIO_CONTINUE": 0xC020AA07, "UFFDIO_API": 0xC018AA3F, "USERFAULTFD_IOC_NEW": 0x0000AA00,
    "UFFDIO_RWPROTECT": 0xC018AA09, "UFFDIO_SET_MODE": 0x4010AA0A,
}


@pytest.mark.parametrize("name,value", DOCUMENTED.items())
def test_uffd_ioctl_numbers(name, value):
    assert getattr(uffd, name) == value


def test_pagemap_scan_number_and_layout():
    assert pagemap.PAGEMAP_SCAN == 0xC0606610
    assert ctypes.sizeof(pagemap.pm_scan_arg) == 96
    assert pagemap.page_region_dtype.itemsize == 24
    assert pagemap.pm_scan_arg.walk_end.offset == 32 and pagemap.pm_scan_arg.return_mask.offset == 88


def test_rfc_generation_reuses_numbers_with_other_names():
    # The two generations collide on purpose of history: same numbers, different meanings.
    assert uffd_rfc.UFFDIO_DEACTIVATE == 0x8010AA09 != uffd.UFFDIO_RWPROTECT
    assert uffd_rfc.UFFD_FEATURE_MINOR_ANON == uffd.UFFD_FEATURE_RWP == 1 << 17
    assert uffd_rfc.UFFD_FEATURE_MINOR_ASYNC == uffd.UFFD_FEATURE_RWP_ASYNC == 1 << 18
    assert uffd_rfc.PAGE_IS_UFFD_DEACTIVATED == pagemap.PAGE_IS_ACCESSED == 0x200
    assert uffd_rfc.UFFDIO_SET_MODE == uffd.UFFDIO_SET_MODE
    assert not hasattr(uffd, "UFFDIO_DEACTIVATE") and not hasattr(uffd, "UFFD_FEATURE_MINOR_ANON")


def test_struct_sizes():
    sizes = {uffd.uffdio_api: 24, uffd.uffdio_register: 32, uffd.uffdio_range: 16, uffd.uffdio_copy: 40,
             uffd.uffdio_writeprotect: 24, uffd.uffdio_continue: 32, uffd.uffdio_rwprotect: 24,
             uffd.uffdio_set_mode: 16}
    for struct, size in sizes.items():
        assert ctypes.sizeof(struct) == size, struct.__name__
    assert uffd.uffd_msg_dtype.itemsize == 32 and uffd.uffd_msg_dtype.fields["address"][1] == 16


HEADER_NAMES = [n for n in dir(uffd) if n.startswith(("UFFDIO", "UFFD_FEATURE", "UFFD_EVENT", "UFFD_PAGEFAULT"))
                and isinstance(getattr(uffd, n), int)]
PAGEMAP_NAMES = [n for n in dir(pagemap) if n.startswith(("PAGE_IS_", "PM_SCAN_")) or n == "PAGEMAP_SCAN"]


@pytest.mark.skipif(not shutil.which("cc"), reason="no C compiler to read the installed uapi headers")
def test_constants_match_installed_uapi_headers(tmp_path):
    """Every name the installed headers define has our value (older headers lack the newest names)."""
    names = HEADER_NAMES + PAGEMAP_NAMES
    body = "\n".join(f'#ifdef {n}\n printf("{n} %llu\\n", (unsigned long long)({n}));\n#endif' for n in names)
    src = tmp_path / "uapi.c"
    src.write_text(f"#include <stdio.h>\n#include <linux/userfaultfd.h>\n#include <linux/fs.h>\n"
                   f"int main(void) {{\n{body}\n return 0; }}\n")
    build = subprocess.run(["cc", "-o", str(tmp_path / "uapi"), str(src)], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.skip(f"uapi headers not usable: {build.stderr.splitlines()[:1]}")
    out = subprocess.run([str(tmp_path / "uapi")], capture_output=True, text=True, check=True).stdout
    seen = dict(line.split() for line in out.splitlines())
    assert seen, "the headers define none of our names"
    for name, value in seen.items():
        module = pagemap if name in PAGEMAP_NAMES else uffd
        assert getattr(module, name) == int(value), name


def test_pagemap_scan_rejects_bad_struct_size():
    """The ABI's refusal: a wrong pm_scan_arg.size is EINVAL (so our size field is what the kernel checks)."""
    import errno

    from bench.kernel import libc

    with pagemap.Scanner(vec_len=4) as scanner:
        arg = pagemap.pm_scan_arg(size=88, start=0, end=4096)
        try:
            libc.ioctl(scanner.fd, pagemap.PAGEMAP_SCAN, arg, "PAGEMAP_SCAN")
        except OSError as e:
            if e.errno == errno.ENOTTY:
                pytest.skip("kernel has no PAGEMAP_SCAN (6.7+)")
            assert e.errno == errno.EINVAL
        else:
            pytest.fail("PAGEMAP_SCAN accepted size 88")


def test_regions_to_bitmap():
    import numpy as np

    base, ps = 0x10000, 4096
    regions = np.array([(base, base + 2 * ps, 2), (base + 2 * ps, base + 3 * ps, 0), (base + 7 * ps, base + 9 * ps, 2)],
                       dtype=pagemap.page_region_dtype)
    bitmap = pagemap.regions_to_bitmap(regions, base, 10)
    assert bitmap.tolist() == [True, True, True, False, False, False, False, True, True, False]
