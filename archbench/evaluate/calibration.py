"""Calibration of a classifier's confidence: ECE, NLL, Brier score, and temperature scaling.

Conventions (the record carries them too, so a reader never has to guess):
- ECE: top-1 confidence in ECE_BINS equal-width bins, sum over bins of |accuracy - confidence| weighted by the
  bin's share of images (Guo et al. 2017, "On Calibration of Modern Neural Networks"), in percent. Computed
  by torchmetrics' multiclass_calibration_error (norm "l1"), whose bins are [k/15, (k+1)/15).
- NLL: mean cross-entropy of the true class, in nats per image.
- Brier: the original multiclass score (Brier 1950): sum over classes of (p_k - onehot_k)^2, mean over
  images; 0 is perfect, 2 is the worst possible.
- Temperature scaling: logits / T with one scalar T fitted to minimise NLL on the VALIDATION split only;
  dividing by T never changes the top-1 prediction, so accuracy is the same before and after.

Probabilities are computed in float64: in float32 a confident model's softmax saturates to exactly 1.0,
which torchmetrics would put in a bin of its own.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ECE_BINS = 15
# Search range for the temperature. Fitted values on CIFAR-scale models are 1-3 (Guo et al. 2017). A fit at
# either end found no minimum inside the range: the validation NLL is still falling there, typically because a
# few validation images carry huge wrong-class margins (an unstable run), and such a T makes test calibration
# worse, not better. It is rejected: T = 1 is kept and the record says why.
TEMPERATURE_BOUNDS = (0.05, 20.0)
# A fit within this factor of either bound counts as at the bound (the bounded search stops within ~1e-6 of it).
BOUND_FACTOR = 1.01
BRIER_CONVENTION = "sum over classes of squared error, mean over images (range 0-2)"


def _check(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must be (N, num_classes) with num_classes >= 2, got shape {tuple(logits.shape)}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must be ({logits.shape[0]},) to match the logits, got shape {tuple(labels.shape)}")
    if logits.shape[0] == 0:
        raise ValueError("no images to measure calibration on: the split is empty")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must lie in 0..{logits.shape[1] - 1} (num_classes={logits.shape[1]}), "
                         f"got {int(labels.min())}..{int(labels.max())}")
    if not torch.isfinite(logits).all():
        raise ValueError("logits contain NaN or inf: the model diverged; calibration is undefined")


def reliability_bins(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = ECE_BINS) -> dict:
    """Per-bin mean confidence, accuracy (percent) and count: the points of a reliability diagram.

    Same bins as torchmetrics ([k/n, (k+1)/n)), except that a confidence of exactly 1.0 joins the last bin
    instead of a bin of its own; empty bins get None so a plot leaves a gap rather than a false zero.
    """
    confidence, predicted = probs.max(dim=1)
    correct = predicted.eq(labels).to(probs.dtype)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=probs.dtype)
    index = (torch.bucketize(confidence, edges, right=True) - 1).clamp_(0, n_bins - 1)
    count = torch.zeros(n_bins, dtype=torch.int64).scatter_add_(0, index, torch.ones_like(index))
    conf_sum = torch.zeros(n_bins, dtype=probs.dtype).scatter_add_(0, index, confidence)
    hit_sum = torch.zeros(n_bins, dtype=probs.dtype).scatter_add_(0, index, correct)

    def per_bin(sums):
        return [100.0 * float(s) / int(n) if n else None for s, n in zip(sums, count)]

    return {"lower": [float(e) for e in edges[:-1]], "confidence": per_bin(conf_sum),
            "accuracy": per_bin(hit_sum), "count": count.tolist()}


def calibration_metrics(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> dict:
    """top1 (%), ece (%), nll (nats/image), brier (0-2) and the reliability bins of logits / temperature."""
    _check(logits, labels)
    logits = logits.detach().cpu().double() / temperature
    labels = labels.detach().cpu().long()
    num_classes = logits.shape[1]
    probs = logits.softmax(dim=1)
    # Probabilities, never logits: torchmetrics applies softmax only when values fall outside [0, 1], so
    # logits that happen to lie in [0, 1] would be taken for probabilities.
    # torchmetrics takes seconds to import (with torchvision): only a run that evaluates pays for it
    from torchmetrics.functional.classification import multiclass_calibration_error

    ece = multiclass_calibration_error(probs, labels, num_classes=num_classes, n_bins=ECE_BINS, norm="l1")
    brier = (probs - F.one_hot(labels, num_classes).double()).pow(2).sum(dim=1).mean()
    return {
        "top1": 100.0 * float(probs.argmax(dim=1).eq(labels).double().mean()),
        "ece": 100.0 * float(ece),
        "nll": float(F.cross_entropy(logits, labels)),
        "brier": float(brier),
        "reliability": reliability_bins(probs, labels),
    }


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 minimising NLL(logits / T): pass VALIDATION logits, never test ones.

    NLL is convex in 1/T, so a bounded scalar search over log T finds the one minimum; searching in log
    space gives T < 1 (sharpening) and T > 1 (softening) the same resolution.
    """
    _check(logits, labels)
    logits = logits.detach().cpu().double()
    labels = labels.detach().cpu().long()

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(logits / math.exp(log_t), labels))

    low, high = (math.log(b) for b in TEMPERATURE_BOUNDS)
    from scipy.optimize import minimize_scalar  # as torchmetrics above: only a run that calibrates

    result = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    if not result.success:
        raise RuntimeError(f"temperature fit did not converge: {result.message}")
    return math.exp(result.x)


def calibrate(test_logits: torch.Tensor, test_labels: torch.Tensor,
              val_logits: torch.Tensor | None = None, val_labels: torch.Tensor | None = None) -> dict:
    """The record's calibration section: test-set metrics, and with validation logits also after scaling.

    Without validation logits (or with an empty validation split, as in a final run with data.val_size=0)
    the temperature is not fitted and the section says why, rather than fitting on the test set.
    """
    section = {"split": "test", "images": int(test_labels.shape[0]), "n_bins": ECE_BINS,
               "units": {"top1": "%", "ece": "%", "nll": "nats per image", "brier": BRIER_CONVENTION},
               "uncalibrated": calibration_metrics(test_logits, test_labels)}
    if val_logits is None or val_labels is None or val_labels.shape[0] == 0:
        section.update(temperature=None, temperature_scaled=None,
                       temperature_note="not fitted: no validation split to fit it on (never fitted on test)")
        return section
    temperature = fit_temperature(val_logits, val_labels)
    val_before = calibration_metrics(val_logits, val_labels)
    val_after = calibration_metrics(val_logits, val_labels, temperature)
    fit = {"split": "val", "images": int(val_labels.shape[0]), "nll_before": val_before["nll"],
           "nll_after": val_after["nll"], "fitted": temperature, "bounds": list(TEMPERATURE_BOUNDS),
           "at_bound": temperature_at_bound(temperature)}
    if fit["at_bound"]:
        low, high = TEMPERATURE_BOUNDS
        section.update(temperature=1.0, temperature_fit=fit, temperature_scaled=None,
                       temperature_note=f"rejected: the fit reached its bound (T = {temperature:.5g}, search "
                                        f"range {low:g}-{high:g}), so T = 1 is kept and no scaled figures are given")
        return section
    section.update(temperature=temperature, temperature_fit=fit,
                   temperature_scaled=calibration_metrics(test_logits, test_labels, temperature))
    return section


def temperature_at_bound(temperature: float, bounds=TEMPERATURE_BOUNDS) -> bool:
    """Whether a fitted temperature lies at (within BOUND_FACTOR of) either end of its search range."""
    low, high = bounds
    return not low * BOUND_FACTOR < temperature < high / BOUND_FACTOR
