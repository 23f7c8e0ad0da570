"""The committed report rebuilds byte for byte on any machine: table floats are written to a fixed number of
significant digits, so the last digits that summation order changes (SIMD width, threads) never reach a file."""
import os
import subprocess
import sys

import pandas as pd
import pytest

from archbench.report.tables import write_table
from helpers import REPO


def test_table_floats_drop_the_digits_summation_order_changes(tmp_path):
    noisy = pd.DataFrame({"share": [0.1 + 0.2, 1 / 3], "count": [3, 4]})  # 0.30000000000000004
    write_table(tmp_path, "t", "caption", noisy)
    assert (tmp_path / "t.csv").read_text().splitlines() == ["share,count", "0.3,3", "0.3333333333,4"]


@pytest.mark.slow
def test_report_is_identical_built_with_one_and_two_threads(tmp_path):
    import shutil

    outputs = []
    out = tmp_path / "report"  # the same folder both times: the report names the command that built it
    for threads in ("1", "2"):
        shutil.rmtree(out, ignore_errors=True)
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "MPLBACKEND": "Agg"}
        result = subprocess.run([sys.executable, "-m", "archbench.report", "results_dir=results/reference",
                                 "study=variance_sources", f"out={out}"], cwd=REPO, env=env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.append({p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
                        if p.is_file()})
    assert outputs[0].keys() == outputs[1].keys()
    differ = [name for name in outputs[0] if outputs[0][name] != outputs[1][name]]
    assert not differ, differ
