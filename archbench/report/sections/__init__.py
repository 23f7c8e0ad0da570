"""The report's sections, one module each; `archbench.report.build.SECTIONS` puts them in order.

A section is a function `section(context) -> list of blocks` (archbench.report.document), reading the
analysed runs from `context.analysis` and writing its tables and figures through `context.table` and
`context.figure`. The study section is made of smaller parts, one module per kind of block: recipe,
training, variance, tuned, evaluation, published, profile, tuning.
"""
