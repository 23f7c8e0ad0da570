"""The preflight of every job of the GPU-scale studies (see test_preflight.py, which checks the rest)."""
import pytest

from test_preflight import GPU_STUDIES, check_study


@pytest.mark.slow
@pytest.mark.parametrize("study", GPU_STUDIES)
def test_every_job_of_every_gpu_study_passes_its_preflight(study, tmp_path_factory, monkeypatch):
    check_study(study, tmp_path_factory, monkeypatch)
