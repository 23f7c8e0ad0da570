"""Published numbers beside measured, for models that repeated their paper's experiment."""
from __future__ import annotations

from ..document import BulletList, Paragraph
from ..reference import published_beside_measured


def blocks(context, comparison) -> list:
    published, notes = published_beside_measured(comparison.summary, comparison.data, context.reference)
    blocks = []
    if published is not None:
        blocks.append(context.table(
            f"{comparison.stem}--published",
            f"{comparison.study} / {comparison.label}: published numbers beside measured, for models that "
            "repeated their paper's experiment", published))
    if notes:
        blocks += [Paragraph("Published numbers left out, because the runs are not the "
                             "paper's experiment:"), BulletList(notes)]
    return blocks
