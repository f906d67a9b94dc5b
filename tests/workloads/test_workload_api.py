"""The registry, spec parsing, parameters and their refusals."""

import json

import numpy as np
import pytest

import workloads
from workloads import WorkloadError

ALL = ["hotcold", "masim", "phase", "scan", "stride", "uniform", "zipf"]


def make(spec, **kw):
    kw = {"npages": 256, "page_size": 4096, "seed": 1, **kw}
    return workloads.create(spec, **kw)


def test_names_sorted_and_complete():
    assert workloads.names() == ALL


def test_parse_spec():
    assert workloads.parse_spec("zipf:s=1.2,scatter=1") == ("zipf", {"s": "1.2", "scatter": "1"})
    assert workloads.parse_spec("uniform") == ("uniform", {})
    assert workloads.parse_spec(" hotcold : hot = 0.2 , ") == ("hotcold", {"hot": "0.2"})


def test_spec_values_converted_and_keywords_override():
    w = make("hotcold:hot=0.2,p=0.5,accesses=1e3,threads=2,write_ratio=0.1", threads=3)
    assert (w.hot, w.p, w.accesses, w.threads, w.write_ratio) == (0.2, 0.5, 1000, 3, 0.1)
    assert isinstance(w.accesses, int) and isinstance(w.hot, float)


def test_defaults():
    w = make("zipf")
    assert (w.s, w.scatter, w.accesses, w.threads, w.write_ratio) == (1.0, 0, 100_000, 1, 0.3)


@pytest.mark.parametrize("name", ALL)
def test_params_json_and_version(name):
    w = make(name)
    params = w.params()
    assert json.loads(json.dumps(params)) == params
    assert {"npages", "page_size", "seed", "accesses", "threads", "write_ratio"} <= set(params)
    assert set(type(w).defaults) <= set(params)
    assert len(w.version) == 64 and w.version == type(w).version


def test_versions_differ_between_modules():
    assert workloads.get("uniform").version != workloads.get("zipf").version
    assert workloads.get("scan").version == workloads.get("stride").version   # one module


BAD = [
    ("zipff", "unknown workload 'zipff'; choose from: hotcold, masim"),
    ("", "empty workload spec"),
    ("zipf:s=-1", "zipf: s must be > 0, got -1"),
    ("zipf:s=abc", "zipf: s must be a finite number, got 'abc'"),
    ("zipf:s=nan", "zipf: s must be a finite number"),
    ("zipf:scatter=2", "zipf: scatter must be 0 or 1"),
    ("zipf:scatter=0.5", "zipf: scatter must be an integer"),
    ("zipf:q=1", "zipf: unknown parameter 'q'; choose from: accesses, threads, write_ratio, s"),
    ("zipf:s", "zipf: bad parameter 's'"),
    ("zipf:s=1,s=2", "zipf: parameter 's' given twice"),
    ("zipf:seed=3", "zipf: seed is not a spec parameter"),
    ("hotcold:hot=1", "hotcold: hot must be in (0, 1), got 1"),
    ("hotcold:hot=0", "hotcold: hot must be in (0, 1), got 0"),
    ("hotcold:p=1.5", "hotcold: p must be in [0, 1], got 1.5"),
    ("phase:hot=0.6", "phase: hot must be in (0, 0.5], got 0.6"),
    ("phase:every=0", "phase: every must be >= 1, got 0"),
    ("stride:stride=0", "stride: stride must be in [1, 256], got 0"),
    ("scan:start=256", "scan: start must be in [0, 255], got 256"),
    ("uniform:accesses=0", "uniform: accesses must be in [1,"),
    ("uniform:threads=0", "uniform: threads must be in [1, 1024], got 0"),
    ("uniform:write_ratio=1.1", "uniform: write_ratio must be in [0, 1], got 1.1"),
    ("masim:config=/nonexistent.toml", "masim: config file '/nonexistent.toml' not found"),
]


@pytest.mark.parametrize("spec, message", BAD)
def test_bad_specs_one_line(spec, message):
    with pytest.raises(WorkloadError) as err:
        make(spec)
    text = str(err.value)
    assert text.startswith(message), text
    assert "\n" not in text


@pytest.mark.parametrize("kw, message", [
    ({"npages": 0}, "uniform: npages must be in [1,"),
    ({"page_size": 1000}, "uniform: page_size must be a power of two"),
    ({"page_size": 1 << 20}, "uniform: page_size must be in [64, 65536]"),
    ({"seed": -1}, "uniform: seed must be in [0,"),
    ({"accesses": 2.5}, "uniform: accesses must be an integer, got 2.5"),
])
def test_bad_arguments(kw, message):
    with pytest.raises(WorkloadError, match=message.replace("[", r"\[").replace("(", r"\(")):
        make("uniform", **kw)


def test_error_is_value_error():
    assert issubclass(WorkloadError, ValueError)


def test_bad_arena_and_interval():
    w = make("uniform", accesses=10)
    with pytest.raises(WorkloadError, match="arena must be a writable C-contiguous"):
        w.run_interval(np.zeros(100, np.uint8), 0)
    with pytest.raises(WorkloadError, match="arena must be"):
        w.run_interval(np.zeros(256 * 4096, np.int8), 0)
    with pytest.raises(WorkloadError, match="interval must be an integer >= 0"):
        w.truth(-1)


def test_truth_arrays_read_only():
    t = make("uniform", accesses=100).truth(0)
    assert t.read.dtype == bool and t.read.shape == (256,)
    with pytest.raises(ValueError):
        t.written[0] = True
    assert np.array_equal(t.any, t.read | t.written)


@pytest.mark.parametrize("text, specs", [
    ("uniform", ["uniform"]),
    ("uniform,zipf", ["uniform", "zipf"]),
    ("hotcold:hot=0.2,p=0.8,zipf", ["hotcold:hot=0.2,p=0.8", "zipf"]),
    ("zipf:s=1.2,scatter=1,hotcold:hot_count=64,p=0.99", ["zipf:s=1.2,scatter=1", "hotcold:hot_count=64,p=0.99"]),
])
def test_split_specs_keeps_each_specs_parameters(text, specs):
    assert workloads.split_specs(text) == specs
