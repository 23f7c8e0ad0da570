"""The hook that makes `python -m archbench.report ...` run the report's command line, archbench/report_cli.py.

An entry hook, not part of the report library: Python runs this file for `-m`, so it only calls the entry point.
"""
import sys

# Imported by name, not only called: an `archbench-report` installed before report_cli.py existed runs
# `archbench.report.__main__:main`, and keeps working until `pip install -e .` rewrites it.
from archbench.report_cli import main

if __name__ == "__main__":
    sys.exit(main())
