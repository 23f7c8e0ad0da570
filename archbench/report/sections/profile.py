"""A profile-only comparison: complexity and speed of each model, no training."""
from __future__ import annotations

from archbench.results.frames import machines_of

from .. import figures as plots
from ..context import notes
from ..document import BulletList, Paragraph
from ..findings import profile_findings
from ..tables import dirty_note, measured_elsewhere, profile_table, speed_note


def where_measured(comparison) -> str:
    """'complexity and speed on <machine>', or, where task=measure timed the models again on another
    machine, both machines: the caption must not credit the training machine with another's speed."""
    hardware = comparison.hardware
    elsewhere = measured_elsewhere(comparison.runs)
    if not elsewhere:
        return f"complexity and speed on {hardware}"
    speed = f"speed re-measured on {'; '.join(elsewhere)}"
    if hardware in machines_of(comparison.runs["latency_hardware"]):
        speed += f" for some models, the rest timed on {hardware}"
    return f"complexity on {hardware}; {speed}"


def blocks(context, comparison) -> list:
    group, label, hardware = comparison.summary, comparison.label, comparison.hardware
    device, title, colors = comparison.device, comparison.title, context.colors
    blocks = [Paragraph("Findings:"), BulletList(profile_findings(group, hardware)),
              context.table(f"{comparison.stem}--summary",
                            f"{comparison.study} / {label}: {where_measured(comparison)} "
                            "(profile only, no training)", profile_table(group, device), group,
                            notes(dirty_note(zip(group.model, group.dirty_runs, group.seeds)),
                                  speed_note(group, "model")))]
    return blocks + context.figures([
        (plots.speed_vs_macs(group, "latency_b1_ms", f"Batch-1 latency (ms, {device})", title, colors),
         "latency-vs-macs", comparison.speed_caption(f"Batch-1 latency vs MACs, {label}")),
        (plots.speed_vs_macs(group, "throughput_img_s", f"Throughput (img/s, {device})", title, colors),
         "throughput-vs-macs", comparison.speed_caption(f"Throughput vs MACs, {label}")),
        (plots.speed_vs(group, "activations", "Activations (M, fvcore count per image)",
                        "latency_b1_ms", f"Batch-1 latency (ms, {device})", title, colors),
         "latency-vs-activations", comparison.speed_caption(f"Batch-1 latency vs activations, {label}")),
    ], comparison.stem)
