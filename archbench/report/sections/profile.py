"""A profile-only comparison: complexity and speed of each model, no training."""
from __future__ import annotations

from .. import figures as plots
from ..context import notes
from ..document import BulletList, Paragraph
from ..findings import profile_findings
from ..tables import dirty_note, profile_table, speed_note


def blocks(context, comparison) -> list:
    group, label, hardware = comparison.summary, comparison.label, comparison.hardware
    device, title, colors = comparison.device, comparison.title, context.colors
    blocks = [Paragraph("Findings:"), BulletList(profile_findings(group, hardware)),
              context.table(f"{comparison.stem}--summary",
                            f"{comparison.study} / {label}: complexity and speed on {hardware} "
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
