"""The report's title, what it was built from, and the command that rebuilds it."""
from __future__ import annotations

from ..document import Code, Heading, Paragraph
from ..labels import count_text

TITLE = "archbench report"


def section(context) -> list:
    excluded = len(context.excluded)
    return [
        Heading(TITLE, 1),
        Paragraph(f"Generated from {len(context.loaded)} usable run records under {context.results_dir}; "
                  f"{count_text(excluded, 'record')} {'was' if excluded == 1 else 'were'} excluded "
                  "(listed under 'Excluded runs'). "
                  "This file is generated: regenerate it rather than editing it, with:"),
        Code(context.command),
    ]
