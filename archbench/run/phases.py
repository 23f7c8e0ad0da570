"""What a training run does after its last step, sized in forward passes so it can be announced and timed.

Evaluation was in no estimate and announced by nobody: a 3-step run trained for 1.4 s and took 98 s in all
(the test set, calibration, corruptions), and in the demo 507 s of 1,229 s was training. The training loop's
ETA, the message at the end of training and the dry run's estimate all price these phases here, from the
same seconds per training step they already measure.
"""
from __future__ import annotations

from dataclasses import dataclass

from archbench.base.timefmt import duration

# A forward pass costs about a third of a training step per image (no backward pass, no update). The dry run
# priced per-epoch validation this way before evaluation after training was priced at all; on a loaded 2-core
# CPU a 3-step Fashion-MNIST resnet20 run measured a fifth (calibration: 15,000 images in 31 s at 1.3 s per
# 128-image step), so the estimates lean long rather than short.
FORWARD_SHARE_OF_STEP = 1 / 3
# Generating one corrupted 32x32 image takes under 1 ms for every default corruption (conf/evaluate/default.yaml);
# priced per pixel for other sizes. Generated sets are cached, so a repeat run spends less: an upper bound.
CORRUPTION_S_PER_PIXEL = 1e-3 / (32 * 32)
SKIP_HINT = "evaluate.after_train=false skips calibration and corruptions"


@dataclass(frozen=True)
class Phase:
    name: str  # as a person reads it in a message
    images: float = 0.0  # forward passes of the model
    fixed_s: float = 0.0  # seconds that do not scale with the model: timing windows, corruption generation

    def seconds(self, forward_s: float) -> float:
        return self.images * forward_s + self.fixed_s


def forward_s(step_s: float, batch_size: int) -> float:
    """Seconds per image of a forward pass, from the seconds of one training step of `batch_size` images."""
    return FORWARD_SHARE_OF_STEP * step_s / max(batch_size, 1)


def after_training(spec, val_size: int, test_size: int, image_size: int) -> list[Phase]:
    """The phases after the last training step, in the order they run (execute.execute and train.loop)."""
    phases = [Phase("test set", images=2 * test_size)]  # best and last weights: an upper bound when they agree
    if not spec.defer_speed:
        options = spec.measure.options
        # batch-1 latency and throughput each time at least min_time_s of calls, after their warm-up
        phases.append(Phase("latency and throughput", fixed_s=2 * float(options.get("min_time_s") or 1.0)))
    evaluate = spec.evaluate
    if evaluate is None or not evaluate.after_train:
        return phases
    if evaluate.calibration:
        phases.append(Phase("calibration", images=test_size + (val_size if evaluate.temperature else 0)))
    sets = len(evaluate.corruption_names) * len(evaluate.severities)
    if sets:
        subset = min(evaluate.test_subset or test_size, test_size)
        generate = 0.0 if evaluate.corruptions_root else sets * subset * image_size ** 2 * CORRUPTION_S_PER_PIXEL
        phases.append(Phase(f"{len(evaluate.corruption_names)} corruptions x {len(evaluate.severities)} "
                            f"severities on {subset:,} images", images=subset * (1 + sets), fixed_s=generate))
    return phases


def describe(phases: list[Phase], forward: float) -> tuple[float, str]:
    """(seconds, words) for a list of phases: 'about 1 min 5 s: test set, ..., calibration (<how to skip>)'."""
    seconds = sum(p.seconds(forward) for p in phases)
    names = ", ".join(p.name for p in phases)
    skippable = any(p.name == "calibration" or "corruptions" in p.name for p in phases)
    return seconds, f"about {duration(seconds)}: {names}" + (f" ({SKIP_HINT})" if skippable else "")
