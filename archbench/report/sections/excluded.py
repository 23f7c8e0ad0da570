"""Excluded runs: every record found but not used, with the reason."""
from __future__ import annotations

from ..context import with_relative_paths
from ..document import Heading, Paragraph
from ..tables import excluded_table


def section(context) -> list:
    blocks = [Heading("Excluded runs", 2)]
    excluded = context.excluded
    if excluded.empty:
        return blocks + [Paragraph("None: every record found was used.")]
    blocks.append(Paragraph(
        "These records were found but not averaged into any table or figure (synthetic, failed, "
        "diverged, partial, unreadable, another schema, or a duplicate), with the reason."))
    display = excluded_table(excluded, context.results_dir)
    return blocks + [context.table("excluded", "Excluded run records", display,
                                   with_relative_paths(excluded, context.results_dir))]
