"""archbench.evaluate: calibration against hand counts, deterministic corruptions, the cache, official files,
the robustness arithmetic, the evaluate() stage and its settings."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from archbench.data import Dataset, Split
from archbench.evaluate import (CORRUPTIONS, EXTRA_CORRUPTIONS, EvaluateSettings, cached_corrupt_images, calibrate,
                                calibration_metrics, corrupt_images, evaluate, fit_temperature, load_official,
                                predict_logits, robustness)

ROOT = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------------------- calibration

# Five images, three classes, logits = log(probabilities) so the softmax gives these probabilities back.
PROBS = torch.tensor([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.2, 0.5, 0.3], [0.2, 0.5, 0.3], [0.2, 0.5, 0.3]],
                     dtype=torch.float64)
LABELS = torch.tensor([0, 1, 1, 2, 1])


def test_metrics_match_hand_counts():
    m = calibration_metrics(PROBS.log(), LABELS)
    # Confidence 0.9 falls in bin 13 ([0.867, 0.933)): 1 of 2 right. Confidence 0.5 in bin 7 ([0.467, 0.533)):
    # 2 of 3 right. ECE = |0.5 - 0.9| * 2/5 + |2/3 - 0.5| * 3/5 = 0.16 + 0.10 = 0.26.
    assert m["ece"] == pytest.approx(26.0)
    assert m["top1"] == pytest.approx(60.0)
    assert m["nll"] == pytest.approx(-(math.log(0.9) + math.log(0.05) + 2 * math.log(0.5) + math.log(0.3)) / 5)
    # Per image sum of squared errors: 0.015, 1.715, 0.38, 0.78, 0.38.
    assert m["brier"] == pytest.approx((0.015 + 1.715 + 0.38 + 0.78 + 0.38) / 5)
    bins = m["reliability"]
    assert [i for i, n in enumerate(bins["count"]) if n] == [7, 13]
    assert (bins["count"][7], bins["count"][13]) == (3, 2)
    assert bins["accuracy"][7] == pytest.approx(200 / 3) and bins["confidence"][13] == pytest.approx(90.0)
    assert bins["accuracy"][0] is None  # empty bin: a gap, not a zero


def test_reliability_bins_reproduce_torchmetrics_ece():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 7, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, 7, (500,), generator=g)
    m = calibration_metrics(logits, labels)
    bins = m["reliability"]
    ece = sum(abs(a - c) * n for a, c, n in zip(bins["accuracy"], bins["confidence"], bins["count"]) if n) / 500
    assert ece == pytest.approx(m["ece"])


def test_logits_inside_unit_interval_are_still_softmaxed():
    # torchmetrics would take these for probabilities; they are logits: confidence is softmax([0.9, 0.1])[0].
    logits = torch.tensor([[0.9, 0.1], [0.9, 0.1]])
    confidence = float(torch.tensor([0.9, 0.1]).softmax(0)[0])
    m = calibration_metrics(logits, torch.tensor([0, 1]))
    assert m["ece"] == pytest.approx(100 * abs(0.5 - confidence))


def _overconfident(n, classes, scale, seed):
    """Labels drawn from softmax(true logits); the model reports true logits * scale (so the best T is scale)."""
    g = torch.Generator().manual_seed(seed)
    true = torch.randn(n, classes, generator=g, dtype=torch.float64) * 2
    labels = torch.multinomial(true.softmax(1), 1, generator=g).squeeze(1)
    return true * scale, labels


def test_temperature_recovers_the_scale_and_minimises_nll():
    logits, labels = _overconfident(20_000, 5, 3.0, seed=0)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(3.0, rel=0.05)
    best = F.cross_entropy(logits / t, labels)
    assert best <= F.cross_entropy(logits / (t * 1.02), labels)
    assert best <= F.cross_entropy(logits / (t / 1.02), labels)


def test_calibrate_fits_temperature_on_validation_only():
    val_logits, val_labels = _overconfident(4000, 5, 3.0, seed=1)
    test_logits, test_labels = _overconfident(4000, 5, 0.5, seed=2)  # underconfident: its own fit would be ~0.5
    section = calibrate(test_logits, test_labels, val_logits, val_labels)
    assert section["temperature"] == pytest.approx(fit_temperature(val_logits, val_labels))
    assert section["temperature"] != pytest.approx(fit_temperature(test_logits, test_labels), rel=0.5)
    assert section["temperature_fit"]["nll_after"] < section["temperature_fit"]["nll_before"]
    assert section["temperature_scaled"]["top1"] == section["uncalibrated"]["top1"]
    assert section["temperature_scaled"] == calibration_metrics(test_logits, test_labels, section["temperature"])


def test_calibrate_without_validation_split_does_not_fit():
    section = calibrate(PROBS.log(), LABELS, torch.empty(0, 3), torch.empty(0, dtype=torch.int64))
    assert section["temperature"] is None and section["temperature_scaled"] is None
    assert "no validation split" in section["temperature_note"]


@pytest.mark.parametrize("logits, labels, match", [
    (torch.zeros(2, 3), torch.tensor([0, 3]), "0..2"),
    (torch.tensor([[0.0, float("nan")]]), torch.tensor([0]), "NaN"),
    (torch.zeros(2, 3), torch.tensor([0]), r"\(2,\)"),
])
def test_calibration_rejects_bad_input(logits, labels, match):
    with pytest.raises(ValueError, match=match):
        calibration_metrics(logits, labels)


# ----------------------------------------------------------------------------------------- corruptions

def _images(n=2, chans=3, size=32, seed=0):
    """Smooth gradients plus noise: texture for the blurs, mid-range values for brightness and contrast."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 200, size)[None, :] + np.linspace(0, 40, size)[:, None]
    base = ramp[None, None] + rng.normal(0, 20, (n, chans, size, size))
    return np.clip(base, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("corruption", CORRUPTIONS + EXTRA_CORRUPTIONS)
def test_each_corruption_is_deterministic_and_changes_the_image(corruption):
    images = _images()
    state = np.random.get_state()[1].copy()
    first = corrupt_images(images, corruption, severity=3, seed=7)
    again = corrupt_images(images, corruption, severity=3, seed=7)
    assert first.dtype == np.uint8 and first.shape == images.shape
    assert first.tobytes() == again.tobytes()
    assert not np.array_equal(first, images)
    assert np.array_equal(np.random.get_state()[1], state)  # NumPy's global generator left as it was


def test_seed_and_severity_change_the_bytes():
    images = _images()
    base = corrupt_images(images, "gaussian_noise", 3, seed=0)
    assert not np.array_equal(base, corrupt_images(images, "gaussian_noise", 3, seed=1))
    assert not np.array_equal(base, corrupt_images(images, "gaussian_noise", 5, seed=0))
    # Each image has its own seed: the first image does not depend on how many follow it.
    assert np.array_equal(base[:1], corrupt_images(images[:1], "gaussian_noise", 3, seed=0))


@pytest.mark.parametrize("corruption", ["contrast", "gaussian_noise", "impulse_noise", "spatter"])
def test_grayscale_28px_images(corruption):
    gray = _images(n=2, chans=1, size=28)
    out = corrupt_images(gray, corruption, 5, seed=0)
    assert out.shape == (2, 1, 28, 28) and out.dtype == np.uint8
    assert not np.array_equal(out, gray)
    assert np.array_equal(out, corrupt_images(gray, corruption, 5, seed=0))
    rgb = corrupt_images(np.repeat(gray, 3, axis=1), corruption, 5, seed=0)
    if corruption == "spatter":  # a colored effect: its gray is the luma of the colored result
        luma = (rgb.astype(np.int64) * np.array([19595, 38470, 7471])[:, None, None]).sum(1) + 0x8000 >> 16
        assert np.array_equal(out[:, 0], luma)
    else:  # noise at full strength (one draw per pixel), and gray results unchanged: the first channel
        assert np.array_equal(out[:, 0], rgb[:, 0])


@pytest.mark.parametrize("kwargs, match", [
    ({"corruption": "gausian_noise"}, "gaussian_noise"),
    ({"severity": 6}, "severity 6"),
    ({"images": np.zeros((1, 2, 32, 32), np.uint8)}, "C = 1 or 3"),
    ({"images": np.zeros((1, 3, 32, 32), np.float32)}, "uint8"),
])
def test_corrupt_images_rejects_bad_input(kwargs, match):
    args = {"images": _images(1), "corruption": "contrast", "severity": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        corrupt_images(**args)


def test_cache_hit_returns_identical_bytes(tmp_path):
    images = _images()
    made, hit = cached_corrupt_images(images, "shot_noise", 2, seed=3, cache_dir=tmp_path, source="toy")
    assert not hit
    files = list(tmp_path.rglob("*"))
    assert [p.suffix for p in files if p.is_file()] == [".npy"]  # no temporary file left behind
    again, hit = cached_corrupt_images(images, "shot_noise", 2, seed=3, cache_dir=tmp_path, source="toy")
    assert hit and again.tobytes() == made.tobytes()
    assert made.tobytes() == corrupt_images(images, "shot_noise", 2, seed=3).tobytes()
    # Other pixels, another seed: other entries, not a stale hit.
    assert not cached_corrupt_images(images[::-1].copy(), "shot_noise", 2, 3, tmp_path, "toy")[1]
    assert not cached_corrupt_images(images, "shot_noise", 2, 4, tmp_path, "toy")[1]


def _official(tmp_path, n=4, size=32):
    """A fake CIFAR-10-C folder: pixel (0, 0, 0) holds severity * 10 + test position, to check the rows read."""
    data = np.zeros((5 * n, size, size, 3), np.uint8)
    for severity in range(1, 6):
        for i in range(n):
            data[(severity - 1) * n + i, 0, 0, 0] = severity * 10 + i
    np.save(tmp_path / "contrast.npy", data)
    np.save(tmp_path / "labels.npy", np.tile(np.arange(n), 5).astype(np.int64))
    return tmp_path


def test_load_official_reads_the_severity_block(tmp_path):
    root = _official(tmp_path)
    images, labels = load_official(root, "contrast", 2, np.array([1, 3]), (4, 3, 32, 32))
    assert images.shape == (2, 3, 32, 32)
    assert images[:, 0, 0, 0].tolist() == [21, 23] and labels.tolist() == [1, 3]


def test_load_official_errors_name_the_problem(tmp_path):
    root = _official(tmp_path)
    with pytest.raises(ValueError, match="right dataset"):
        load_official(root, "contrast", 1, np.array([0]), (10, 3, 32, 32))
    with pytest.raises(FileNotFoundError, match="fog.npy"):
        load_official(root, "fog", 1, np.array([0]), (4, 3, 32, 32))


# ------------------------------------------------------------------------------------------ robustness

def _pixel_predictor(images):
    """'Predicts' the class written in pixel (0, 0, 0) modulo 10: accuracies are then known by construction."""
    cls = torch.as_tensor(np.asarray(images))[:, 0, 0, 0].long() % 10
    return F.one_hot(cls, 10).float()


def test_robustness_arithmetic_on_official_files(tmp_path):
    root = _official(tmp_path)
    clean = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    clean[:, 0, 0, 0] = torch.arange(4)  # clean: every class right
    labels = torch.arange(4)
    # Severity s images carry s*10 + i, i.e. class i again: right everywhere except where we break it below.
    data = np.load(root / "contrast.npy")
    data[2 * 4 + 0, 0, 0, 0] = 99  # severity 3, image 0: now predicts class 9, wrong
    np.save(root / "contrast.npy", data)
    section = robustness(_pixel_predictor, clean, labels, ["contrast"], [1, 3], corruptions_root=root)
    assert section["source"] == "official" and section["images"] == 4
    assert section["clean_top1"] == 100.0
    assert section["top1"] == {"contrast": {"1": 100.0, "3": 75.0}}
    assert section["mean_corruption_top1"] == pytest.approx(87.5)
    assert section["relative_drop"] == pytest.approx(12.5)
    assert section["labels_match_test_order"] is True


def test_robustness_subset_is_seeded_and_shared_with_clean(tmp_path):
    images = torch.as_tensor(_images(n=20))
    labels = torch.arange(20) % 10
    seen = []

    def predict(x):
        seen.append(x.shape[0])
        return torch.zeros(x.shape[0], 10)

    a = robustness(predict, images, labels, ["contrast"], [1], test_subset=5, seed=1, cache_dir=tmp_path)
    b = robustness(predict, images, labels, ["contrast"], [1], test_subset=5, seed=1, cache_dir=tmp_path)
    assert seen == [5, 5, 5, 5] and a["images"] == 5
    assert a["cached_sets"] == 0 and b["cached_sets"] == 1  # same seed, same subset: the cached set is reused
    assert "NOT with published CIFAR-10-C" in a["method"]


# ---------------------------------------------------------------------------------------- evaluate stage

def _dataset(n_val=60, n_test=80, chans=3, size=32):
    g = torch.Generator().manual_seed(0)

    def split(n):
        return Split(torch.as_tensor(_images(n, chans, size, seed=n)), torch.randint(0, 4, (n,), generator=g))

    return Dataset("toy", split(8), split(n_val), split(n_test), 4, list("abcd"), chans, size,
                   (0.5,) * chans, (0.25,) * chans)


def _tiny_model(chans=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(chans, 4, 3, stride=4), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 4)).eval()


def test_evaluate_returns_both_sections(tmp_path):
    dataset, model = _dataset(), _tiny_model()
    running_mean = model[1].running_mean.clone()
    settings = EvaluateSettings(corruptions=["contrast", "pixelate"], severities=[1, 5], test_subset=30,
                                cache_dir=str(tmp_path))
    out = evaluate(model, dataset, "cpu", settings)
    assert set(out) == {"calibration", "robustness"}
    cal, rob = out["calibration"], out["robustness"]
    assert cal["images"] == 80 and cal["temperature_fit"]["images"] == 60
    val_logits = predict_logits(model, dataset.val.images, dataset.mean, dataset.std, "cpu")
    assert cal["temperature"] == pytest.approx(fit_temperature(val_logits, dataset.val.labels))
    assert rob["images"] == 30 and set(rob["top1"]) == {"contrast", "pixelate"}
    assert set(rob["top1"]["pixelate"]) == {"1", "5"}
    assert torch.equal(model[1].running_mean, running_mean) and not model.training


def test_evaluate_sections_switch_off_and_grayscale(tmp_path):
    dataset, model = _dataset(chans=1, size=28), _tiny_model(chans=1)
    out = evaluate(model, dataset, "cpu", EvaluateSettings(temperature=False, corruptions=[], cache_dir=str(tmp_path)))
    assert out["robustness"] is None
    assert out["calibration"]["temperature"] is None and "temperature=false" in out["calibration"]["temperature_note"]
    settings = EvaluateSettings(calibration=False, temperature=False, corruptions=["fog"], severities=[2],
                                cache_dir=str(tmp_path))
    out = evaluate(model, dataset, "cpu", settings)
    assert out["calibration"] is None and out["robustness"]["top1"]["fog"]["2"] >= 0


def test_evaluate_reuses_logits_the_caller_has(tmp_path):
    dataset, model = _dataset(), _tiny_model()
    settings = EvaluateSettings(corruptions=["contrast"], severities=[1], test_subset=20, cache_dir=str(tmp_path))
    computed = evaluate(model, dataset, "cpu", settings)
    given = {name: predict_logits(model, split.images, dataset.mean, dataset.std, "cpu")
             for name, split in (("val", dataset.val), ("test", dataset.test))}
    reused = evaluate(model, dataset, "cpu", settings, logits=given)
    for out in (computed, reused):  # everything but the timings and the cache hits
        out["calibration"].pop("seconds")
        for key in ("seconds", "generation_s", "inference_s", "cached_sets"):
            out["robustness"].pop(key)
    assert reused == computed
    # Logits that are visibly not this model's change the result: they were used, not recomputed.
    shifted = evaluate(model, dataset, "cpu", settings, logits={"test": given["test"] * 2})
    assert shifted["calibration"]["uncalibrated"]["nll"] != computed["calibration"]["uncalibrated"]["nll"]
    with pytest.raises(ValueError, match=r"logits\['test'\] has 5 rows but the test split has 80"):
        evaluate(model, dataset, "cpu", settings, logits={"test": given["test"][:5]})


def test_yaml_mirrors_settings_defaults():
    values = yaml.safe_load((ROOT / "conf" / "evaluate" / "default.yaml").read_text())
    assert EvaluateSettings.from_dict(values) == EvaluateSettings()
    assert set(EvaluateSettings.from_dict({"corruptions": "all"}).corruption_names) == set(CORRUPTIONS)


@pytest.mark.parametrize("values, match", [
    ({"corruptions": ["fgo"]}, "evaluate.corruptions.*'fog'"),
    ({"corruptions": "most"}, "evaluate.corruptions='most'"),
    ({"corruptions": ["fog", "fog"]}, "twice"),
    ({"severities": [0, 3]}, r"evaluate.severities=\[0, 3\]"),
    ({"severities": []}, "at least one severity"),
    ({"test_subset": 0}, "evaluate.test_subset=0"),
    ({"batch_size": "big"}, "evaluate.batch_size='big'"),
    ({"calibration": False}, "evaluate.temperature=false"),
    ({"seed": -1}, "evaluate.seed=-1"),
    ({"corruption": ["fog"]}, r"unknown evaluate keys \['corruption'\]"),
])
def test_settings_errors_name_key_and_fix(values, match):
    with pytest.raises(ValueError, match=match):
        EvaluateSettings.from_dict(values)


def test_a_failing_robustness_section_is_recorded_and_the_run_stays_complete(tmp_path, monkeypatch):
    """A corruption library broken on another machine's numpy must not cost a trained run its record."""
    import json

    import archbench.evaluate.stage as stage
    from archbench.run import run
    from test_faults import tiny_spec

    def broken(*args, **kwargs):
        raise AttributeError("module 'numpy' has no attribute 'float'")

    monkeypatch.setattr(stage, "robustness", broken)
    monkeypatch.setattr(stage, "_load_library", lambda: None)
    spec = tiny_spec(tmp_path, measure={"warmup": 1, "min_reps": 2, "min_time_s": 0.01, "batch_size": 2},
                     evaluate=stage.EvaluateSettings(corruptions=["contrast"], severities=[1], test_subset=20))
    assert run(spec)["status"] == "complete"
    record = json.loads((spec.record_dir / "record.json").read_text())
    assert record["status"] == "complete" and record["calibration"]["uncalibrated"]["ece"] >= 0
    assert record["calibration"]["precision"].startswith(("fp32", "bf16"))
    robustness = record["robustness"]
    assert robustness["error"]["type"] == "AttributeError" and "robustness failed" in robustness["skipped"]
