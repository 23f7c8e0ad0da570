"""Record paths, atomic writes and the environment stamp."""
import errno
import json
import os

import pytest

from archbench import record as rec


def test_record_dir_is_deterministic_and_rejects_bad_names(tmp_path):
    path = rec.record_dir(tmp_path, "demo", "cifar10", "resnet20", "standard-200ep-1a2b3c4d", 2)
    assert path == tmp_path / "runs/demo/cifar10/resnet20/standard-200ep-1a2b3c4d/seed2"
    assert rec.parse_record_path(path / "record.json") == {"study": "demo", "data": "cifar10", "model": "resnet20",
                                                           "variant": "standard-200ep-1a2b3c4d", "seed": 2}
    with pytest.raises(ValueError, match="study='../x'"):
        rec.record_dir(tmp_path, "../x", "cifar10", "resnet20", "v", 0)


def test_atomic_write_keeps_old_file_on_disk_full(tmp_path, monkeypatch):
    path = tmp_path / "record.json"
    rec.atomic_write_json(path, {"status": "complete", "v": 1})

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        rec.atomic_write_json(path, {"status": "complete", "v": 2})
    assert json.loads(path.read_text())["v"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no temporary file left behind


def test_corrupt_record_is_moved_aside_not_overwritten(tmp_path):
    path = tmp_path / "record.json"
    path.write_text('{"status": "compl')
    with pytest.raises(rec.CorruptFileError, match="moved aside to record.json.corrupt-0"):
        rec.read_record(path)
    assert not path.exists() and (tmp_path / "record.json.corrupt-0").read_text() == '{"status": "compl'
    assert rec.read_record(path) is None


def test_environment_stamp_names_code_and_hardware():
    env = rec.environment("cpu")
    for key in ("archbench_version", "git_commit", "python", "torch", "torchvision", "timm", "fvcore", "cuda",
                "cudnn", "device", "device_name", "cpu_model", "threads", "hostname", "start_time", "end_time"):
        assert key in env
    assert env["torch"].startswith("2.") and env["threads"] >= 1 and env["device"] == "cpu"


def test_new_record_has_every_top_level_key():
    r = rec.new_record(task="train", study="s", model="m", family="f", data="d", seed=0, config={}, env={},
                       identity={"fingerprint": "f", "variant": "v", "settings": {}}, recipe=None)
    assert r["schema"] == rec.SCHEMA and r["status"] == "failed"
    assert set(r) >= {"schema", "status", "task", "study", "model", "family", "data", "seed", "synthetic", "config",
                      "env", "dataset", "complexity", "latency", "train", "metrics", "history", "error"}


def _identity(order_seed):
    return {"fingerprint": "f", "variant": "quick-2ep-0a1b2c3d",
            "settings": {"task": "train", "data": {"name": "cifar10", "order_seed": order_seed}, "seed": 4}}


def test_order_seed_column_reads_the_identity_and_a_null_follows_the_seed(tmp_path):
    path = tmp_path / "runs/s/cifar10/m/quick-2ep-0a1b2c3d/seed4/record.json"
    base = {"status": "complete", "task": "train", "study": "s", "model": "m", "data": "cifar10", "seed": 4}
    assert rec.record_columns({**base, "identity": _identity(2)}, path)["order_seed"] == 2
    assert rec.record_columns({**base, "identity": _identity(None)}, path)["order_seed"] == 4
    # Schema 1 records have no identity: the resolved config's data section, else the seed.
    assert rec.record_columns({**base, "config": {"data": {"order_seed": 7}}}, path)["order_seed"] == 7
    assert rec.record_columns({**base, "config": {"data": {"name": "cifar10"}}}, path)["order_seed"] == 4
    assert rec.record_columns(base, path)["git_dirty"] is None


def test_an_exported_tree_is_stamped_with_the_commit_it_was_exported_from(monkeypatch):
    from archbench.record import format as record_module  # where the stamp asks git

    monkeypatch.setattr(record_module, "_git", lambda *args: None)
    monkeypatch.delenv(record_module.EXPORTED_COMMIT_ENV, raising=False)
    bare = record_module.environment("cpu")
    assert bare["git_commit"] is None and bare["git_dirty"] is None
    monkeypatch.setenv(record_module.EXPORTED_COMMIT_ENV, "0123abc")
    stamped = record_module.environment("cpu")
    assert stamped["git_commit"] == "0123abc" and stamped["git_dirty"] is False
    monkeypatch.setattr(record_module, "_git", lambda *args: "ffff" if args[0] == "rev-parse" else " M x.py")
    assert record_module.environment("cpu")["git_commit"] == "0123abc"  # not the surrounding checkout's


def test_the_machine_identity_tells_cpu_kinds_apart(tmp_path):
    from archbench.base.device import cpu_identity
    from archbench.record import hardware_label

    def cpu(family, model, flags):
        path = tmp_path / f"cpuinfo-{family}-{model}"
        path.write_text(f"processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: {family}\nmodel\t\t: {model}\n"
                        f"model name\t: AMD EPYC\nstepping\t: 0\nflags\t\t: fpu {flags}\n\nprocessor\t: 1\n")
        return {"cpu": cpu_identity(path, tmp_path / "no-meminfo")}

    zen2, zen4 = cpu(23, 49, "avx avx2"), cpu(25, 17, "avx2 avx512f avx512_bf16")
    assert zen2["cpu"]["microarchitecture"] == "Zen 2" and zen2["cpu"]["isa"] == ["AVX2"]
    assert hardware_label("cpu", "cpu", "AMD EPYC", 1, zen2) == "cpu: AMD EPYC (Zen 2, AVX2), 1 thread"
    assert hardware_label("cpu", "cpu", "AMD EPYC", 1, zen4) == "cpu: AMD EPYC (Zen 4, AVX512-BF16), 1 thread"
    # a record made before machines were identified keeps its bare, less specific label
    assert hardware_label("cpu", "cpu", "AMD EPYC", 1) == "cpu: AMD EPYC, 1 thread"
    unknown = cpu(99, 1, "")
    assert hardware_label("cpu", "cpu", "AMD EPYC", 2, unknown) == "cpu: AMD EPYC (family 99 model 1, no AVX2), 2 threads"
