"""`python -m archbench.report [results_dir=results/runs] [out=results/report] [study=NAME] [include_synthetic=true]`

With no arguments it reports your own runs (results/runs) into results/report, which git
ignores; the committed report is rebuilt only on request (`make report`). Arguments use Hydra's
key=value syntax but are parsed here: the report needs no config tree.
`python -m archbench.report export ...` hands the rest of the line to `archbench.export`, and
`python -m archbench.report compare BASE NEW ...` to `archbench.report.compare`, and
`python -m archbench.report project ...` to `archbench.run.project`.
"""
from __future__ import annotations

import sys

from archbench.base.keyvalue import parse_key_values

from .build import DEFAULT_OUT, DEFAULT_RESULTS_DIR

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
    try:
        from archbench import export
    except ModuleNotFoundError as error:
        if error.name != "archbench.export":
            raise
        return _error("the export subcommand needs archbench/export.py, which this installation "
                      "lacks: update archbench (git pull; pip install -e .), or build the report "
                      "without 'export'")
    if any(argument in ("-h", "--help", "help") for argument in arguments):
        print(f"usage: {export.USAGE}")
        return 0
    return export.main(arguments)


def main(arguments=None) -> int:
    arguments = sys.argv[1:] if arguments is None else list(arguments)
    if arguments and arguments[0] == "export":
        return _export(arguments[1:])
    if arguments and arguments[0] == "project":
        from archbench.run.project import main as project

        return project(arguments[1:])
    if arguments and arguments[0] == "compare":
        from .compare import main as compare

        return compare(arguments[1:])
    if any(argument in ("-h", "--help", "help") for argument in arguments):
        print(HELP)
        return 0
    try:
        options = parse_arguments(arguments)
    except UsageError as error:
        return _error(error)
    from .build import ReportInputError, build_report

    try:
        out = build_report(**options)
    except (FileNotFoundError, FileExistsError, NotADirectoryError, ReportInputError) as error:
        return _error(error)
    print(f"report written to {out}/README.md and {out}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
