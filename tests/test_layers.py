"""The layers of archbench/ as its imports show them (docs/design.md): read from the source with `ast`, every
import anywhere in a module, inside functions too, so a cycle cannot hide in a function-local import."""
import ast
import functools
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "archbench"
# The entry layer: the command lines, above everything else. A package's __main__.py is only the hook that
# lets `python -m` run one of them, so it belongs here too, not to the package it sits in.
ENTRY_MODULES = {"archbench.__main__", "archbench.report_cli", "archbench.sweep"}
# A function-local import is kept only where it keeps a heavy dependency (torch, Hydra, pandas...) off a
# path that does without it, and says so in a comment; every other import is at the top of its module.
MAX_LOCAL_IMPORTS = 15
# Imports that would undo the layering: part -> parts it must never import.
FORBIDDEN = {
    # measurement times a model; how it was trained is not its business
    "archbench.measure": {"archbench.train"},
    # the report reads records and their analysis (torch-free): never the runs or the stages they drive (the
    # tuning protocol and the export are analysis, in archbench/results/), and never a command line
    "archbench.report": {"archbench.run", "archbench.train", "archbench.models", "archbench.data",
                         "archbench.measure", "archbench.evaluate", *ENTRY_MODULES},
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the archbench module imported
    line: int
    local: bool  # inside a function
    commented: bool  # a comment on the import's lines or on the line above


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The module `name` is, or is in (an imported function or class): its longest prefix that is a module."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


def imported(node: ast.Import | ast.ImportFrom, module: str, path: Path) -> set[str]:
    """The archbench modules one import statement loads (relative imports resolved)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            package = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
            base = f"{package}.{base}" if base else package
        names = [f"{base}.{alias.name}" for alias in node.names]  # a submodule, or a name in `base`
    targets = {resolve(name) for name in names if name.split(".")[0] == "archbench"}
    return {target for target in targets if target and target != module}


@functools.lru_cache(maxsize=1)
def imports() -> tuple[Import, ...]:
    found = []
    for module, path in modules().items():
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)

        def visit(node, in_function):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    above = lines[child.lineno - 2].strip() if child.lineno > 1 else ""
                    commented = above.startswith("#") or any(
                        "#" in line for line in lines[child.lineno - 1:child.end_lineno])
                    found.extend(Import(module, target, child.lineno, in_function, commented)
                                 for target in sorted(imported(child, module, path)))
                visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

        visit(tree, False)
    return tuple(found)


def part(module: str) -> str:
    """A subpackage (archbench.run), a root module (archbench.settings), or an entry hook (a __main__.py)."""
    if module.endswith(".__main__"):
        return module
    return ".".join(module.split(".")[:2])


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan): each holds a cycle."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def connect(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def graph(key=lambda module: module) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for edge in imports():
        source, target = key(edge.module), key(edge.target)
        edges.setdefault(source, set())
        if source != target:
            edges[source].add(target)
    return edges


def test_the_reading_finds_imports_of_every_kind():
    """The checks below mean something only if the reading sees local, relative and aliased imports."""
    found = {(edge.module, edge.target, edge.local) for edge in imports()}
    assert ("archbench.report_cli", "archbench.run.project", True) in found  # inside a function
    assert ("archbench.results.tuning", "archbench.results.loading", False) in found  # relative
    assert ("archbench.run.assemble", "archbench.data", False) in found  # `from archbench import data as ...`
    assert ("archbench.report.__main__", "archbench.report_cli", False) in found


def test_no_module_imports_itself_through_others():
    assert cycles(graph()) == []


def test_no_part_imports_itself_through_others():
    assert cycles(graph(part)) == []


def test_function_local_imports_are_few_and_say_why():
    local = [edge for edge in imports() if edge.local]
    where = [f"{modules()[edge.module].relative_to(PACKAGE.parent)}:{edge.line} imports {edge.target}"
             for edge in local]
    assert len({(edge.module, edge.line) for edge in local}) <= MAX_LOCAL_IMPORTS, \
        "move these imports to the top of their modules (or the shared thing down a layer):\n" + "\n".join(where)
    silent = [text for edge, text in zip(local, where) if not edge.commented]
    assert not silent, "say which heavy dependency each keeps off which path (a comment on or above it):\n" + \
        "\n".join(silent)


def test_no_part_imports_across_the_layering():
    crossing = sorted(f"{edge.module}:{edge.line} imports {edge.target}" for edge in imports()
                      if part(edge.target) in FORBIDDEN.get(part(edge.module), ()))
    assert not crossing, "\n".join(crossing)


def test_a_dash_m_hook_only_calls_its_entry_point():
    hooks = [module for module in modules() if module.endswith(".__main__") and module != "archbench.__main__"]
    assert hooks == ["archbench.report.__main__"]
    for hook in hooks:
        assert {edge.target for edge in imports() if edge.module == hook} <= ENTRY_MODULES
