"""/proc/kallsyms: text symbols only, nearest symbol at or below an address, one id per name,
and the reason when the kernel hides addresses."""

import os

import numpy as np
import pytest

from bench.kernel import kallsyms

TEXT = """ffffffff81000300 T rmap_walk
ffffffff81000000 T _stext
ffffffff81000100 t helper
ffffffff81000200 D some_data
ffffffff81000400 t helper
ffffffffc0000000 t mod_fn\t[some_module]
"""


def test_parse_keeps_text_symbols_sorted_and_looks_up_the_one_below():
    symbols = kallsyms.Symbols.parse(TEXT)
    assert symbols.addresses.tolist() == [0xffffffff81000000, 0xffffffff81000100, 0xffffffff81000300,
                                          0xffffffff81000400, 0xffffffffc0000000]
    at = symbols.lookup(np.array([0xffffffff81000000, 0xffffffff81000250, 0xffffffff81000310,
                                  0xffffffff81000401, 0xffffffffc0000010, 0xffffffff80000000], np.uint64))
    assert [symbols.name(int(i)) for i in at] == ["_stext", "helper", "rmap_walk", "helper", "mod_fn",
                                                  kallsyms.UNKNOWN]
    assert at[1] == at[3]  # two static functions of one name: one id, counted once per callchain
    assert [symbols.name(int(i)) for i in symbols.ids_of(("rmap_walk", "not_here"))] == ["rmap_walk"]


def test_load_says_why_when_addresses_are_hidden(tmp_path):
    hidden = tmp_path / "kallsyms"
    hidden.write_text("0000000000000000 T _stext\n0000000000000000 T rmap_walk\n")
    symbols, why = kallsyms.Symbols.load(str(hidden))
    assert symbols is None and "shows no addresses" in why and "kptr_restrict" in why
    symbols, why = kallsyms.Symbols.load(str(tmp_path / "absent"))
    assert symbols is None and "CONFIG_KALLSYMS" in why


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: /proc/kallsyms shows addresses to CAP_SYSLOG only")
def test_this_kernels_symbols_hold_its_entry_code():
    symbols, why = kallsyms.Symbols.load()
    if why:
        pytest.skip(why)
    assert {"do_syscall_64", "rmap_walk"} <= set(symbols.names)
