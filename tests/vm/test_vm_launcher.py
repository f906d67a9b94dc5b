"""The pure parts of ``hotbench vm`` / ``hotbench kernel``, no kernel booted: QEMU command line,
bzImage header, module selection, init script, apt sources, config fragment checks, and the
one-line errors through the CLI."""

import lzma
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bench.vm import _guest
from bench.vm import launch as vm
from bench.errors import HotbenchError
from bench.vm.kernels import _apt, debian, kconfig

ROOT = Path(__file__).resolve().parents[2]


def fake_bzimage(path: Path, release: str = "7.3.4-test") -> Path:
    head = bytearray(0x1000)
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", head, 0x20E, 0x100)  # kernel_version, relative to 0x200
    text = f"{release} (dev@box) #1 SMP PREEMPT_DYNAMIC".encode()
    head[0x300:0x300 + len(text)] = text
    path.write_bytes(bytes(head))
    return path


def fake_module(depends: str) -> bytes:
    """A minimal ELF64 with a .modinfo section, as a .ko has."""
    modinfo = b"license=GPL\0depends=" + depends.encode() + b"\0intree=Y\0"
    shstrtab = b"\0.modinfo\0.shstrtab\0"
    modinfo_off = 64
    shstr_off = modinfo_off + len(modinfo)
    shoff = (shstr_off + len(shstrtab) + 7) & ~7
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x28, shoff)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 2)

    def sh(name, offset, size):
        entry = bytearray(64)
        struct.pack_into("<II", entry, 0, name, 1)
        struct.pack_into("<QQ", entry, 0x18, offset, size)
        return bytes(entry)

    body = bytes(header) + modinfo + shstrtab
    body += bytes(shoff - len(body))
    return body + bytes(64) + sh(1, modinfo_off, len(modinfo)) + sh(10, shstr_off, len(shstrtab))


# ---------------------------------------------------------------- image, accel, command line

def test_kernel_release_from_bzimage_header(tmp_path):
    assert vm.kernel_release(fake_bzimage(tmp_path / "bzImage")) == "7.3.4-test"


def test_kernel_release_refuses_non_bzimage_and_missing(tmp_path):
    (tmp_path / "vmlinux").write_bytes(b"\x7fELF" + bytes(0x400))
    with pytest.raises(HotbenchError, match="not an x86 bzImage"):
        vm.kernel_release(tmp_path / "vmlinux")
    with pytest.raises(HotbenchError, match="cannot read kernel image"):
        vm.kernel_release(tmp_path / "nosuch")


def test_qemu_command_line(tmp_path):
    machine = vm.VM(image=Path("/k/bzImage"), initrd=Path("/t/initrd"), ctl_dir=Path("/t/ctl"), accel="tcg",
                    mem="1G", cpus=2, shares=[_guest.Share("hbshare0", "/work/main")])
    cmd = vm.qemu_command(machine, "qemu")
    joined = " ".join(cmd)
    assert cmd[:9] == ["qemu", "-machine", "q35", "-cpu", "max,avx2=off", "-accel", "tcg,thread=multi", "-m", "1G"]
    assert "-no-reboot" in cmd and "-nodefaults" in cmd
    append = cmd[cmd.index("-append") + 1]
    assert "oops=panic" in append and "panic=-1" in append and "console=ttyS0" in append
    assert "damon_stat.enabled=N" in append  # else DAMON_STAT holds DAMON and no kdamond can start
    # the host root read-only; control and shares writable, each under its own tag
    assert "local,id=fs0,path=/,security_model=none,multidevs=remap,readonly=on" in joined
    assert f"mount_tag={_guest.ROOT_TAG}" in joined and f"mount_tag={_guest.CTL_TAG}" in joined
    assert "path=/work/main,security_model=none,multidevs=remap -device" in joined
    assert "mount_tag=hbshare0" in joined
    kvm = vm.qemu_command(vm.VM(image=Path("k"), initrd=Path("i"), ctl_dir=Path("c"), accel="kvm"))
    assert kvm[kvm.index("-accel") + 1] == "kvm"


def test_qemu_icount_is_single_threaded_tcg_with_the_instruction_clock():
    def argv(**kw):
        return vm.qemu_command(vm.VM(image=Path("k"), initrd=Path("i"), ctl_dir=Path("c"), **kw), "qemu")

    cmd = argv(accel="tcg", icount=0)
    accel = cmd.index("-accel")
    assert cmd[accel:accel + 4] == ["-accel", "tcg,thread=single", "-icount", "shift=0,sleep=off"]
    assert argv(accel="tcg", icount=3)[accel + 3] == "shift=3,sleep=off"
    assert "-icount" not in argv(accel="tcg") and "-icount" not in argv(accel="kvm")
    # two icount boots lay memory out alike: no address-space randomisation there, and only there
    def append(cmd):
        return set(cmd[cmd.index("-append") + 1].split())

    assert {"norandmaps", "nokaslr"} <= append(cmd)
    assert not {"norandmaps", "nokaslr"} & append(argv(accel="tcg"))
    vm.check_icount("auto", 0)
    vm.check_icount("kvm", None)
    with pytest.raises(HotbenchError, match="--icount needs TCG emulation"):
        vm.check_icount("kvm", 0)


def test_guest_environment_names_the_instruction_clock():
    from bench import clock

    assert clock.guest_env(None) == {}
    env = clock.guest_env(2)
    assert env == {"HOTBENCH_CLOCK": "instructions", "HOTBENCH_ICOUNT_SHIFT": "2"}
    assert clock.current(env) == clock.Clock("instructions", 2) and clock.current({}) == clock.Clock("wall", None)


def test_qemu_numa_nodes_split_memory_and_deal_cpus():
    def argv(**kw):
        return vm.qemu_command(vm.VM(image=Path("k"), initrd=Path("i"), ctl_dir=Path("c"), **kw), "qemu")

    cmd = argv(mem="2G", cpus=2, numa_nodes=2)
    smp = cmd.index("-smp")
    assert cmd[smp + 1:smp + 10] == [
        "2,sockets=2,cores=1,threads=1",  # a socket per CPU: no LLC shared across nodes
        "-object", "memory-backend-ram,id=m0,size=1024M", "-numa", "node,nodeid=0,memdev=m0,cpus=0",
        "-object", "memory-backend-ram,id=m1,size=1024M", "-numa", "node,nodeid=1,memdev=m1,cpus=1"]
    assert cmd[cmd.index("-m") + 1] == "2G"  # the nodes' sizes add up to -m, as QEMU requires
    # round-robin: a non-contiguous CPU set is repeated cpus= options
    numa = [a for a in argv(mem="3G", cpus=5, numa_nodes=3) if a.startswith("node,")]
    assert numa == ["node,nodeid=0,memdev=m0,cpus=0,cpus=3", "node,nodeid=1,memdev=m1,cpus=1,cpus=4",
                    "node,nodeid=2,memdev=m2,cpus=2"]
    # fewer CPUs than nodes: the rest are memory-only nodes; a bare number is MiB, as for QEMU's -m
    cmd = argv(mem="1536", cpus=1, numa_nodes=3)
    assert [a for a in cmd if a.startswith(("node,", "memory-backend"))] == [
        "memory-backend-ram,id=m0,size=512M", "node,nodeid=0,memdev=m0,cpus=0",
        "memory-backend-ram,id=m1,size=512M", "node,nodeid=1,memdev=m1",
        "memory-backend-ram,id=m2,size=512M", "node,nodeid=2,memdev=m2"]
    # one node (the default) is today's command line: no topology at all
    one = argv(mem="2G", cpus=2)
    assert one == argv(mem="2G", cpus=2, numa_nodes=1)
    assert one[one.index("-smp") + 1] == "2" and "-numa" not in one and "-object" not in one


def test_numa_layout_refusals():
    assert vm.numa_layout("2G", 2, 1) == [(2048, [0, 1])]
    assert vm.mem_mib("512M") == 512 and vm.mem_mib("2g") == 2048 and vm.mem_mib("100") == 100
    with pytest.raises(HotbenchError, match=r"--numa-nodes 3: --mem 2G \(2048 MiB\) does not divide evenly"):
        vm.numa_layout("2G", 2, 3)
    with pytest.raises(HotbenchError, match="--numa-nodes 4: --mem 2M is 2 MiB, less than 1 MiB per node"):
        vm.numa_layout("2M", 2, 4)
    with pytest.raises(HotbenchError, match="must be at least 1"):
        vm.numa_layout("2G", 2, 0)


def test_accel_choice(monkeypatch):
    assert vm.choose_accel("tcg") == ("tcg", None)
    monkeypatch.setattr(vm, "_cpu_has_virt", lambda: False)
    monkeypatch.setattr(os.path, "exists", lambda p: True)
    monkeypatch.setattr(os, "access", lambda p, mode: True)
    accel, note = vm.choose_accel("auto")
    assert accel == "tcg" and "neither vmx nor svm" in note and "TCG" in note
    with pytest.raises(HotbenchError, match="--accel kvm: KVM is unusable here"):
        vm.choose_accel("kvm")
    monkeypatch.setattr(vm, "_cpu_has_virt", lambda: True)
    assert vm.choose_accel("auto") == ("kvm", None)


def test_lost_vm_reasons():
    panic = ["[ 3.1] sysrq: Trigger a crash", "[ 3.2] Kernel panic - not syncing: sysrq triggered crash"]
    assert vm._lost_reason(panic, 0) == "kernel panic: sysrq triggered crash"
    init = [f"{_guest.INIT_ERROR} cannot mount the host root over 9p: ...", "[ 2.0] reboot: Power down"]
    assert vm._lost_reason(init, 0).startswith("guest init failed: cannot mount the host root")
    assert vm._lost_reason(["qemu-system-x86_64: -m 99T: cannot set up guest memory"], 1).startswith(
        "QEMU exited with status 1: qemu-system-x86_64: -m 99T")
    assert "without reporting" in vm._lost_reason([], 0)


# ---------------------------------------------------------------- modules and init

def test_modinfo_depends():
    assert _guest.modinfo_depends(fake_module("9pnet,netfs")) == ["9pnet", "netfs"]
    assert _guest.modinfo_depends(fake_module("")) == []


def test_needed_modules_dependencies_first_and_builtins_skipped(tmp_path):
    tree = tmp_path / "lib" / "modules" / "7.3.4-test"
    fs = tree / "kernel" / "fs"
    (fs / "9p").mkdir(parents=True)
    (fs / "overlayfs").mkdir()
    (tree / "kernel" / "net").mkdir()
    (fs / "9p" / "9p.ko.xz").write_bytes(lzma.compress(fake_module("9pnet,netfs")))
    (fs / "netfs.ko").write_bytes(fake_module(""))
    (tree / "kernel" / "net" / "9pnet.ko.xz").write_bytes(lzma.compress(fake_module("")))
    (tree / "kernel" / "net" / "9pnet_virtio.ko.xz").write_bytes(lzma.compress(fake_module("9pnet")))
    (fs / "overlayfs" / "overlay.ko.xz").write_bytes(lzma.compress(fake_module("")))
    (tree / "modules.builtin").write_text("kernel/drivers/virtio/virtio_pci.ko\nkernel/fs/overlayfs/overlay.ko\n")
    got = _guest.needed_modules(tree)
    names = [n for n, _ in got]
    assert names == ["9pnet", "9pnet_virtio", "netfs", "9p"]  # overlay is built in here
    assert all(elf.startswith(b"\x7fELF") for _, elf in got)  # decompressed for busybox insmod
    assert _guest.needed_modules(None) == []
    assert vm.find_modules(tmp_path / "vmlinuz", "7.3.4-test", tmp_path) == tree
    assert vm.find_modules(tmp_path / "vmlinuz", "7.3.4-test", tree) == tree
    with pytest.raises(HotbenchError, match="no module tree there"):
        vm.find_modules(tmp_path / "vmlinuz", "7.3.4-test", tmp_path / "lib")


def test_init_script_order_and_status():
    init = _guest.init_script(["netfs", "9p"], [_guest.Share("hbshare0", "/tmp/results dir")],
                                ("7.3.4-test", "/c/lib/modules/7.3.4-test"), "/c/config", "7.3.4-test")
    lines = init.splitlines()
    assert lines[0] == "#!/bin/busybox sh"
    assert init.index("insmod /modules/netfs.ko") < init.index("insmod /modules/9p.ko") < init.index("mount -t 9p")
    assert "cache=loose,ro hbroot /mnt/lower" in init
    # a share under /tmp is mounted after the guest's /tmp tmpfs, so it stays visible
    assert init.index("tmpfs tmp;") < init.index("hbshare0 .'/tmp/results dir'")
    assert "mount --bind /mnt/lower/c/lib/modules/7.3.4-test lib/modules/7.3.4-test" in init
    assert init.index("chroot /newroot") < init.index("/status") < init.index("poweroff -f\n")
    script = _guest.run_script(["hotbench", "run", "--out", "a b"], {"HOTBENCH_ACCEL": "tcg"}, "/w", "/c")
    assert "export HOTBENCH_ACCEL=tcg" in script and "hotbench run --out 'a b'" in script


def test_guest_environment(monkeypatch):
    env = vm._guest_env("tcg", ["rwp", "mglru"], "/run/hotbench/bin", {"X": "1"})
    assert env["HOTBENCH_ACCEL"] == "tcg" and env["HOTBENCH_REQUIRE"] == "rwp,mglru"
    assert env["NUMBA_CPU_NAME"] == "generic" and env["NUMBA_CACHE_DIR"] == str(vm.numba_cache_dir())
    assert env["PATH"].startswith("/run/hotbench/bin:") and env["X"] == "1"
    assert str(vm.CHECKOUT) in env["PYTHONPATH"].split(os.pathsep)
    assert "HOTBENCH_REQUIRE" not in vm._guest_env("kvm", None, "/b", {})


# ---------------------------------------------------------------- apt sources and Debian package names

DEB822 = """\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_parse_deb822_and_pick_main_archive():
    sources = _apt.parse_deb822(DEB822)
    assert [s.suites for s in sources] == [("bookworm", "bookworm-updates"), ("bookworm-security",)]
    mirror = _apt.debian_mirror(list(reversed(sources)))  # the security archive is never the one
    assert mirror.uri == "http://mirror.example/debian"
    assert mirror.signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"


def test_parse_one_line_sources_and_disabled_stanzas():
    text = ("# comment\ndeb-src http://mirror.example/debian bookworm main\n"
            "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main contrib\n")
    (src, binary) = _apt.parse_one_line(text)
    assert src.types == ("deb-src",) and binary.signed_by == "/k.gpg" and binary.components == ("main", "contrib")
    assert _apt.debian_mirror([src, binary]) is binary
    disabled = _apt.parse_deb822("Enabled: no\nTypes: deb\nURIs: http://a.example/debian\nSuites: sid\n")
    with pytest.raises(HotbenchError, match="no Debian mirror"):
        _apt.debian_mirror(disabled)


def test_private_apt_never_reads_system_sources(tmp_path):
    mirror = _apt.Source(("deb",), "http://mirror.example/debian", ("bookworm",), ("main",))
    apt = _apt.PrivateApt(tmp_path, mirror, ("trixie-backports", "sid"))
    opts = apt.options()
    assert f"Dir::Etc::SourceParts={tmp_path}/etc/sources.list.d" in opts
    assert f"Dir::State::Lists={tmp_path}/lists" in opts and f"Dir::Cache={tmp_path}/cache" in opts
    assert (tmp_path / "etc" / "sources.list").read_text().splitlines() == [
        f"deb [signed-by={_apt.DEFAULT_KEYRING}] http://mirror.example/debian trixie-backports main",
        f"deb [signed-by={_apt.DEFAULT_KEYRING}] http://mirror.example/debian sid main"]
    assert not any((tmp_path / "etc" / "sources.list.d").iterdir())


def test_debian_abi_selection():
    names = ["linux-binary-7.3.4+deb13-amd64", "linux-binary-7.3.4+deb13-cloud-amd64",
             "linux-binary-unsigned-7.3.4+deb13-rt-amd64", "linux-binary-7.3.10+deb13-amd64",
             "linux-binary-7.2.12+deb13-amd64", "linux-image-7.30.1+deb13-amd64", "linux-modules-7.3.4+deb13-amd64",
             "linux-image-6.1.0-37-amd64-unsigned", "linux-source-7.3"]
    assert debian.matching_abis(names, "7.3") == ["7.3.10+deb13-amd64", "7.3.4+deb13-amd64"]
    assert debian.matching_abis(names, "7.3.4") == ["7.3.4+deb13-amd64"]
    assert debian.matching_abis(names, "6.1") == ["6.1.0-37-amd64"]
    assert debian.packages_for("7.3.4+deb13-amd64", set(names) | {"linux-base-7.3.4+deb13-amd64"}) == [
        "linux-binary-7.3.4+deb13-amd64", "linux-modules-7.3.4+deb13-amd64", "linux-base-7.3.4+deb13-amd64"]
    assert debian.packages_for("6.1.0-37-amd64", set(names)) == ["linux-image-6.1.0-37-amd64-unsigned"]


# ---------------------------------------------------------------- the config fragment

def test_fragment_says_why_for_every_option():
    fragment = kconfig.parse_fragment(kconfig.fragment_text())
    assert len(fragment) > 30
    assert all(o.why for o in fragment), [o.option for o in fragment if not o.why]
    wanted = {"IDLE_PAGE_TRACKING", "LRU_GEN", "LRU_GEN_ENABLED", "MEM_SOFT_DIRTY", "CHECKPOINT_RESTORE", "DAMON",
              "DAMON_VADDR", "DAMON_PADDR", "DAMON_SYSFS", "USERFAULTFD", "USERFAULTFD_RWP", "PTE_MARKER_UFFD_WP",
              "TRANSPARENT_HUGEPAGE", "HUGETLBFS", "MEMCG", "NUMA", "NUMA_BALANCING", "KSM", "DEBUG_FS", "9P_FS",
              "NET_9P_VIRTIO", "VIRTIO_PCI", "OVERLAY_FS", "PROC_PAGE_MONITOR"}
    assert wanted <= {o.option for o in fragment if o.value == "y"}
    # a config with the whole fragment applied enables every mechanism a config can enable
    config = kconfig.parse_config(kconfig.apply_fragment("", fragment))
    assert kconfig.mechanisms(config) == list(kconfig.mechanism_options())


def test_verify_fragment_on_a_fake_config():
    fragment = kconfig.parse_fragment(
        "# rwp\nCONFIG_USERFAULTFD_RWP=y\n\n# idle-page\nCONFIG_IDLE_PAGE_TRACKING=y\n# soft-dirty\n"
        "CONFIG_MEM_SOFT_DIRTY=y\n\n# slim\n# CONFIG_SOUND is not set\n# CONFIG_DRM is not set\n")
    assert [(o.option, o.value, o.why) for o in fragment][:2] == [("USERFAULTFD_RWP", "y", "rwp"),
                                                                  ("IDLE_PAGE_TRACKING", "y", "idle-page")]
    config = kconfig.parse_config("CONFIG_IDLE_PAGE_TRACKING=y\n# CONFIG_MEM_SOFT_DIRTY is not set\n"
                                  "CONFIG_SOUND=y\n")
    known = {"IDLE_PAGE_TRACKING", "MEM_SOFT_DIRTY", "SOUND", "DRM"}  # a 6.12 tree: no USERFAULTFD_RWP
    verdict = kconfig.verify(fragment, config, known)
    assert [o.option for o in verdict.unknown] == ["USERFAULTFD_RWP"]
    assert [o.option for o in verdict.dropped] == ["MEM_SOFT_DIRTY", "SOUND"]
    rewritten = kconfig.apply_fragment("CONFIG_SOUND=y\nCONFIG_X=y\n", fragment)
    assert "CONFIG_SOUND=y" not in rewritten and "# CONFIG_SOUND is not set" in rewritten and "CONFIG_X=y" in rewritten


def test_kconfig_symbols(tmp_path):
    (tmp_path / "mm").mkdir()
    (tmp_path / "mm" / "Kconfig").write_text("config USERFAULTFD\n\tbool\nmenuconfig DAMON\n  bool\n")
    (tmp_path / "Kconfig.debug").write_text("config DEBUG_FS\n")
    assert kconfig.kconfig_symbols(tmp_path) == {"USERFAULTFD", "DAMON", "DEBUG_FS"}


# ---------------------------------------------------------------- one-line errors through the CLI

def hotbench(*args, env=None):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)


def test_missing_image_is_one_line(tmp_path):
    out = hotbench("vm", "--kernel", str(tmp_path / "nosuch"), "--", "true")
    assert out.returncode == 1
    assert out.stderr == f"error: cannot read kernel image {tmp_path / 'nosuch'}: No such file or directory\n"


def test_missing_qemu_is_one_line(tmp_path):
    image = fake_bzimage(tmp_path / "bzImage")
    env = {**os.environ, "PATH": str(tmp_path)}  # no qemu-system-x86_64 on this PATH
    out = hotbench("vm", "--kernel", str(image), "--", "true", env=env)
    assert out.returncode == 1
    assert out.stderr.startswith("error: qemu-system-x86_64 not found on PATH") and out.stderr.count("\n") == 1


def test_bad_vm_options_are_refused():
    out = hotbench("vm", "--kernel", "x", "--mem", "lots", "--", "true")
    assert out.returncode == 2 and "memory size like 2G" in out.stderr


@pytest.mark.parametrize("args, code, message", [
    (["--icount", "--accel", "kvm"], 1, "error: --icount needs TCG emulation (QEMU counts instructions only there): "
                                        "drop --accel kvm\n"),
    (["--icount=11"], 2, "hotbench vm: error: argument --icount: the shift must be 0..10 (guest ns per instruction "
                         "= 2**shift), not 11\n"),
    (["--numa-nodes", "0"], 2, "hotbench vm: error: argument --numa-nodes: must be at least 1, not 0\n"),
    (["--numa-nodes", "two"], 2, "hotbench vm: error: argument --numa-nodes: a whole number of NUMA nodes, not 'two'\n"),
    (["--numa-nodes", "1.5"], 2, "hotbench vm: error: argument --numa-nodes: a whole number of NUMA nodes, not '1.5'\n"),
    (["--mem", "2G", "--numa-nodes", "3"], 1, "error: --numa-nodes 3: --mem 2G (2048 MiB) does not divide evenly "
                                              "into 3 nodes; pick a size that is a multiple of 3 MiB\n"),
    (["--mem", "2M", "--numa-nodes", "4"], 1, "error: --numa-nodes 4: --mem 2M is 2 MiB, less than 1 MiB per node\n"),
])
def test_bad_numa_nodes_are_one_line(args, code, message, tmp_path):
    # refused before the image is even looked at: the image does not exist
    out = hotbench("vm", "--kernel", str(tmp_path / "nosuch"), *args, "--", "true")
    assert out.returncode == code and out.stderr.endswith(message), out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    if code == 1:
        assert out.stderr == message


def test_kernel_list_runs(tmp_path):
    out = hotbench("kernel", "list", env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert out.returncode == 0 and "no cached kernels" in out.stdout, out.stderr


def test_require_auto_reads_the_config_beside_the_image(tmp_path):
    from bench.cli.vm import resolve_require

    image = fake_bzimage(tmp_path / "vmlinuz")
    (tmp_path / "config").write_text("CONFIG_USERFAULTFD=y\nCONFIG_USERFAULTFD_RWP=y\nCONFIG_PROC_PAGE_MONITOR=y\n"
                                     "CONFIG_IDLE_PAGE_TRACKING=y\n# CONFIG_LRU_GEN is not set\n")
    assert resolve_require("auto", image, None) == ["rwp", "idle-page", "referenced", "mprotect"]
    assert resolve_require("rwp,mglru", image, None) == ["rwp", "mglru"]
    (tmp_path / "config").unlink()
    with pytest.raises(HotbenchError, match="--require auto: no config found"):
        resolve_require("auto", image, None)


def test_build_refuses_what_is_not_a_source_tree(tmp_path):
    out = hotbench("kernel", "build", "--source", str(tmp_path))
    assert out.returncode == 1 and out.stderr == f"error: {tmp_path} is not a kernel source tree " \
                                                 "(no Makefile and Kconfig)\n"
    assert hotbench("kernel", "fetch", "fedora").stderr == (
        "error: unknown kernel source 'fedora': only 'debian[:VERSION]' can be fetched\n")
