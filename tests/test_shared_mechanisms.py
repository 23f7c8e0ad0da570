"""The mechanisms every stage shares, each spelled once: device resolution, precision names, key=value
command lines, atomic writes and locks."""
import json
import re
from pathlib import Path

import pytest
import torch

from archbench.base import device as devices, numerics
from archbench.data import cache
from archbench.base.files import atomic_write_json, exclusive_lock
from archbench.base.keyvalue import parse_key_values
from archbench.train import precision

REPO = Path(__file__).resolve().parent.parent


# --- devices ------------------------------------------------------------------------------------------

def without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def with_gpus(monkeypatch, count):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def test_auto_is_the_cpu_without_a_gpu_and_cpu_stays_cpu(monkeypatch):
    without_cuda(monkeypatch)
    assert devices.resolve_device("auto") == torch.device("cpu")
    assert devices.resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("device, message", [
    ("cuda", "device='cuda' but this machine has no CUDA device"),
    ("cuda:1", "CUDA is not available"),
    ("tpu", "is not one of: auto, cpu, cuda, cuda:<index>"),
    ("cpu:0", "is not one of"),
    ("banana", "is not one of"),
])
def test_an_unusable_device_names_the_choices(monkeypatch, device, message):
    without_cuda(monkeypatch)
    with pytest.raises(ValueError, match=re.escape(message)):
        devices.resolve_device(device)


def test_a_gpu_index_past_the_last_names_the_range(monkeypatch):
    with_gpus(monkeypatch, 2)
    with pytest.raises(devices.DeviceError, match=r"has 2 CUDA device\(s\): use device=cuda:0 \.\.\. cuda:1"):
        devices.resolve_device("cuda:2")


def test_a_gpu_keeps_the_index_it_was_given_and_its_label_names_one(monkeypatch):
    with_gpus(monkeypatch, 2)
    assert str(devices.resolve_device("cuda")) == "cuda"  # what a record's env.device has always said
    assert str(devices.resolve_device("cuda:1")) == "cuda:1"
    assert devices.resolve_device("auto").type == "cuda"
    assert devices.device_label(devices.resolve_device("cuda")) == "cuda:0"
    assert devices.device_label(torch.device("cpu")) == "cpu"


def test_cpu_model_and_flags_read_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx512_bf16\n")
    assert devices.cpu_model(cpuinfo) == "Test CPU 9000"
    assert devices.cpu_flags(cpuinfo) == {"fpu", "avx512_bf16"}
    assert devices.cpu_flags(tmp_path / "missing") == frozenset()
    assert devices.cpu_model(tmp_path / "missing")  # platform's name, never empty


def test_the_record_side_of_the_device_module_imports_without_torch():
    import subprocess
    import sys

    code = "import sys, archbench.base.device; archbench.base.device.cpu_model(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --- precision names ----------------------------------------------------------------------------------

def test_every_precision_spelling_derives_from_one_table():
    assert precision.AMPS == ("off", "bf16", "fp16")
    assert precision.AMP_CHOICES == ("auto", "off", "bf16", "fp16")
    assert precision.AMP_DTYPES == {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    for spelling, name in [("off", "fp32"), (None, "fp32"), (False, "fp32"), ("fp32", "fp32"), ("float32", "fp32"),
                           ("bfloat16", "bf16"), (torch.bfloat16, "bf16"), ("fp16", "fp16"), (torch.float16, "fp16")]:
        assert precision.precision_name(spelling) == name
    assert precision.autocast_dtype("off") is None and precision.autocast_dtype("bf16") is torch.bfloat16
    with pytest.raises(ValueError, match="'fp32' \\(or 'off'\\), 'bf16' or 'fp16'"):
        precision.precision_name("int8")


def test_measuring_names_and_casts_every_precision_as_training_does():
    from archbench.measure import latency, peak

    for amp in precision.AMPS:
        assert latency._amp_name(amp) == amp
        assert peak.precision_name(amp) == precision.precision_name(amp)
        assert numerics.autocast_dtype(amp) is precision.AMP_DTYPES[amp]


# --- key=value command lines --------------------------------------------------------------------------

DEFAULTS = {"results_dir": "results/runs", "out": None, "study": None, "include_synthetic": False}


def parse(*arguments):
    return parse_key_values(arguments, DEFAULTS, usage="tool [key=value ...]", booleans={"include_synthetic"},
                            nullable={"study"})


def test_key_values_override_the_defaults():
    assert parse() == DEFAULTS
    assert parse("out=x.csv", "+study=demo", "include_synthetic=YES") == {
        "results_dir": "results/runs", "out": "x.csv", "study": "demo", "include_synthetic": True}
    assert parse("study=null")["study"] is None and parse("study=")["study"] is None


@pytest.mark.parametrize("argument, message", [
    ("runs.csv", "argument 'runs.csv' is not key=value; usage: tool [key=value ...]"),
    ("outdir=x", "unknown key 'outdir'; valid keys: results_dir, out, study, include_synthetic"),
    ("include_synthetic=maybe", "include_synthetic='maybe' is not a boolean: use include_synthetic=true or "
                                "include_synthetic=false"),
    ("results_dir=", "results_dir= needs a value, e.g. results_dir=results/runs; usage: tool"),
    ("out=", "out= needs a value; usage: tool"),
])
def test_a_bad_key_value_names_the_fix(argument, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse(argument)


# --- atomic writes and locks --------------------------------------------------------------------------

def test_json_can_be_written_with_sorted_keys(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"b": 1, "a": 2}, sort_keys=True)
    atomic_write_json(tmp_path / "b.json", {"b": 1, "a": 2})
    assert list(json.loads((tmp_path / "a.json").read_text())) == ["a", "b"]
    assert list(json.loads((tmp_path / "b.json").read_text())) == ["b", "a"]


def test_the_cache_build_lock_is_the_shared_file_lock(tmp_path):
    with cache.build_lock(tmp_path / "entry") as held:
        assert held
        with exclusive_lock(tmp_path / "entry" / "build.lock") as second:
            assert second is False  # a parallel builder waits instead of decoding the same files again
    with exclusive_lock(tmp_path / "entry" / "build.lock") as after:
        assert after


def test_only_the_files_module_renames_files_into_place():
    sources = [path for folder in ("archbench", "scripts", "benchmarks") for path in (REPO / folder).rglob("*.py")]
    renaming = [str(path.relative_to(REPO)) for path in sources
                if path.name != "files.py" and re.search(r"\bos\.(replace|rename)\(", path.read_text())]
    assert not renaming, f"write through archbench.base.files (atomic_write_*) instead: {renaming}"
