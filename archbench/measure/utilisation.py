"""How much of the device's peak a training run used: MFU against the peak in the precision that ran."""
from __future__ import annotations

import logging

from archbench.measure.peak import device_peak_flops, training_cost

log = logging.getLogger("archbench")


def add_utilisation(train: dict, flops_train, device: str, amp: str, world: int) -> None:
    """The device's peak in the precision that ran (`amp`, a train.amp word), and MFU against it (one
    device's share of the job), into the record's train section."""
    peak = device_peak_flops(device, precision=amp)
    train["device_peak_flops_per_s"] = peak.get("flops_per_s")
    train["device_peak"] = peak
    if not (flops_train and train.get("img_per_s")):
        return
    train["img_per_s_per_device"] = train["img_per_s"] / world
    cost = training_cost(flops_train, train["img_per_s_per_device"], peak.get("flops_per_s"))
    if (cost["mfu"] or 0) > 1 and peak.get("cached"):
        # Training just beat the cached ceiling, so that peak was measured on a busy machine: measure again.
        load = peak.get("load_avg_1m")
        log.warning("MFU %.2f > 1 against the cached %s peak (%.3g FLOP/s, measured at 1-minute load %s): "
                    "re-measuring it", cost["mfu"], peak.get("precision"), peak["flops_per_s"],
                    "unknown" if load is None else f"{load:.2f}")
        peak = device_peak_flops(device, precision=amp, refresh=True)
        train["device_peak_flops_per_s"], train["device_peak"] = peak.get("flops_per_s"), peak
        cost = training_cost(flops_train, train["img_per_s_per_device"], peak.get("flops_per_s"))
    train.update(cost)
    train["mfu_basis"] = "per device" if world > 1 else "single device"
