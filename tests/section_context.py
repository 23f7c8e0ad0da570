"""A stand-in for the report being built, for tests of single report sections: what the section modules call
on it, with each table returned as ("table", caption, note) and no files or figures written."""
import types

import matplotlib.pyplot as plt

from archbench.report import figures as plots


def section_context(analysis=None):
    def table(name, caption, display, raw=None, note=None):
        return ("table", caption, note)

    def figures(made, stem):
        for figure, _kind, _caption in made:
            if figure is not None:
                plt.close(figure)
        return []

    return types.SimpleNamespace(table=table, figures=figures,
                                 colors=plots.family_colors(["resnet_v1"]), analysis=analysis,
                                 include_synthetic=False, reference_note=None)


def tables(blocks):
    """The tables among a section's blocks, as (kind, caption, note)."""
    return [block for block in blocks if isinstance(block, tuple) and block[0] == "table"]
