"""Collate run records into the report: README.md, index.html, tables/ and figures/.

Command line: `python -m archbench.report [results_dir=results/runs] [out=results/report] [study=NAME]
[include_synthetic=true]`. From Python: `archbench.report.build_report(results_dir, out)`.
Nothing here imports torch or Hydra.
"""
from .build import build_report

__all__ = ["build_report"]
