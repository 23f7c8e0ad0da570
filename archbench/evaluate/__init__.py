"""Beyond clean accuracy: calibration (ECE, NLL, Brier, temperature scaling) and corruption robustness.

    from archbench.evaluate import EvaluateSettings, evaluate
    sections = evaluate(model, dataset, device, EvaluateSettings.from_dict(cfg_evaluate))
    record.update(sections)   # {"calibration": {...} | None, "robustness": {...} | None}
"""
from .calibration import ECE_BINS, calibrate, calibration_metrics, fit_temperature, reliability_bins
from .corruptions import (CORRUPTIONS, EXTRA_CORRUPTIONS, SEVERITIES, cached_corrupt_images, corrupt_images,
                          load_official)
from .robustness import robustness
from .stage import EvaluateSettings, evaluate, predict_logits

__all__ = ["CORRUPTIONS", "ECE_BINS", "EXTRA_CORRUPTIONS", "EvaluateSettings", "SEVERITIES", "cached_corrupt_images",
           "calibrate", "calibration_metrics", "corrupt_images", "evaluate", "fit_temperature", "load_official",
           "predict_logits", "reliability_bins", "robustness"]
