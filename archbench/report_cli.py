"""`python -m archbench.report [results_dir=results/runs] [out=results/report] [study=NAME] [include_synthetic=true]`

The report's command line (`archbench-report`, or `python -m archbench.report`, whose __main__.py only calls
`main` here). With no arguments it reports your own runs (results/runs) into results/report, which git
ignores; the committed report is rebuilt only on request (`make report`). Arguments use Hydra's
key=value syntax but are parsed here: the report needs no config tree.
`... export ...` hands the rest of the line to `archbench.results.export`,
`... compare BASE NEW ...` to `archbench.report.compare`, and
`... project ...` to `archbench.run.project`, which times training steps on this machine.
An entry point beside archbench/__main__.py, not part of the report library: `project` reaches into the
runs' layer, which archbench.report never imports.
"""
from __future__ import annotations

import sys

from archbench.base.keyvalue import parse_key_values
from archbench.report import compare
from archbench.report.build import DEFAULT_OUT, DEFAULT_RESULTS_DIR, ReportInputError, build_report
from archbench.results import export

USAGE = __doc__.splitlines()[0].strip("`")
HELP = f"""usage: {USAGE}
       python -m archbench.report export [results_dir=results/runs] out=runs.parquet|runs.csv [include_synthetic=true]
       python -m archbench.report compare BASE NEW [--study NAME] ...   (does NEW reproduce BASE within noise?)
       python -m archbench.report project [results_dir=results/runs] [target=N] [budget_s=S] [out=FILE.csv] ...
           (time to a target accuracy projected onto this machine)

Builds the report from run records; `export` writes them as one table, `compare` checks two results folders."""
DEFAULTS = {"results_dir": DEFAULT_RESULTS_DIR, "out": DEFAULT_OUT, "study": None,
            "include_synthetic": False}
# Bad input: the same code as the training CLI (`python -m archbench`).
EXIT_BAD_INPUT = 2


class UsageError(ValueError):
    pass


def parse_arguments(arguments: list[str]) -> dict:
    return parse_key_values(arguments, DEFAULTS, usage=USAGE, booleans={"include_synthetic"}, nullable={"study"},
                            error=UsageError)


def _error(message) -> int:
    print(f"archbench.report: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _export(arguments: list[str]) -> int:
    if any(argument in ("-h", "--help", "help") for argument in arguments):
        print(f"usage: {export.USAGE}")
        return 0
    return export.main(arguments)


def main(arguments=None) -> int:
    arguments = sys.argv[1:] if arguments is None else list(arguments)
    if arguments and arguments[0] == "export":
        return _export(arguments[1:])
    if arguments and arguments[0] == "project":
        # torch, to time training steps here: building or exporting a report never loads it
        from archbench.run.project import main as project

        return project(arguments[1:])
    if arguments and arguments[0] == "compare":
        return compare.main(arguments[1:])
    if any(argument in ("-h", "--help", "help") for argument in arguments):
        print(HELP)
        return 0
    try:
        options = parse_arguments(arguments)
    except UsageError as error:
        return _error(error)
    try:
        out = build_report(**options)
    except (FileNotFoundError, FileExistsError, NotADirectoryError, ReportInputError) as error:
        return _error(error)
    print(f"report written to {out}/README.md and {out}/index.html")
    return 0
