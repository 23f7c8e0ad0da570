"""Decisions every DDP rank must share are taken once, on rank 0, even when each rank would decide otherwise.

A per-rank fake precision probe (installed by a sitecustomize in each torchrun worker) answers fp32 NCHW on
rank 0 (amp=off) and bf16 channels_last on rank 1: a rank that probed for itself would train in a different layout and
DDP would stop on mismatched parameter strides.
"""
import os
import subprocess
import sys
import textwrap

from helpers import FAST, REPO, load

FAKE_PROBE = textwrap.dedent('''
    import os
    if os.environ.get("RANK") is not None:  # torchrun workers only, not the launcher
        import archbench.train.precision as precision

        def disagreeing_probe(*args, **kwargs):
            rank = int(os.environ["RANK"])
            with open(os.path.join(os.environ["PROBE_LOG_DIR"], f"probed-rank{rank}"), "w"):
                pass
            return {"amp": "off" if rank == 0 else "bf16", "channels_last": rank != 0, "probe": {},
                    "reason": f"fake probe on rank {rank}", "cached": False, "low_precision": "bf16"}

        precision.choose_precision = disagreeing_probe
''')


def test_ranks_train_in_rank_0s_precision_when_their_probes_disagree(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(FAKE_PROBE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO), os.environ.get("PYTHONPATH", "")]),
           "PROBE_LOG_DIR": str(tmp_path)}
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "archbench", *FAST,
           "train.amp=auto", "train.channels_last=auto", "threads=1", f"results_dir={results}"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    record = load(next(results.glob("runs/**/record.json")))
    assert record["status"] == "complete" and record["train"]["world_size"] == 2
    assert (record["train"]["amp"], record["train"]["channels_last"]) == ("off", False)
    assert record["train_precision"]["reason"] == "fake probe on rank 0"
    # Rank 1 never probed: the probe is rank 0's alone (one timing run, not two competing for the cores).
    assert sorted(p.name for p in tmp_path.glob("probed-*")) == ["probed-rank0"]
