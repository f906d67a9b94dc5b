"""``hotbench vm --kernel`` takes whatever 'hotbench kernel fetch/build/list' print (a key, the
cache entry's directory) or an image or kernel tree; without it, ./arch/x86/boot/bzImage.
No QEMU needed: only the resolution is tested (the boots are in tests/vm)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli.vm import TREE_IMAGE, resolve_image
from bench.errors import HotbenchError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A kernel cache with one entry, as 'kernel fetch' leaves it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    entry = tmp_path / "cache" / "hotbench" / "kernels" / "debian-7.3.4-amd64"
    entry.mkdir(parents=True)
    (entry / "vmlinuz").write_bytes(b"MZ")
    (entry / "meta.json").write_text(json.dumps({"release": "7.3.4-amd64"}))
    return entry


def test_key_directory_and_image_all_name_the_same_kernel(cache):
    image = cache / "vmlinuz"
    assert resolve_image("debian-7.3.4-amd64") == image  # 'kernel list'
    assert resolve_image(str(cache)) == image  # 'kernel fetch' / 'kernel build' print this
    assert resolve_image(str(cache) + "/") == image
    assert resolve_image(str(image)) == image


def test_a_kernel_tree_and_the_current_directory(cache, tmp_path, monkeypatch):
    tree = tmp_path / "linux"
    (tree / TREE_IMAGE).parent.mkdir(parents=True)
    (tree / TREE_IMAGE).write_bytes(b"MZ")
    assert resolve_image(str(tree)) == (tree / TREE_IMAGE).resolve()
    monkeypatch.chdir(tree)
    assert resolve_image(None) == (tree / TREE_IMAGE).resolve()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HotbenchError, match="no --kernel, and no arch/x86/boot/bzImage here"):
        resolve_image(None)


@pytest.mark.parametrize("text,message", [
    ("nosuch-key", r"not a file, a directory or a cached kernel's key \(debian-7.3.4-amd64\)"),
    ("{tmp}", "a directory, but neither a cached kernel"),
])
def test_what_is_no_kernel_says_so(cache, tmp_path, text, message):
    with pytest.raises(HotbenchError, match=message):
        resolve_image(text.format(tmp=tmp_path))


def test_cli_refuses_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench", "vm", "--kernel", str(tmp_path), "--", "true"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"error: --kernel {tmp_path}: a directory, but neither a cached kernel")
