"""The layering in docs/design.md holds for every import in src/blockmae (lazy ones included): imports point
down, never sideways, never in a cycle; no module imports another's private names; no file is over 400 lines."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "blockmae"
MAX_LINES = 400


def layer_table() -> dict[str, int]:
    """unit (top-level module or package of blockmae) -> layer, from the table in docs/design.md."""
    text = (ROOT / "docs" / "design.md").read_text()
    block = text.split("## Layers", 1)[1].split("```", 2)[1]
    table = {}
    for line in block.splitlines():
        hit = re.match(r"\s*(\d+)\s+([\w, ]+?)\s{2,}", line)
        if hit:
            for unit in hit.group(2).split(","):
                table[unit.strip()] = int(hit.group(1))
    return table


def module_name(path: Path) -> str:
    parts = ("blockmae",) + path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)


def unit_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:  # the package itself
        return "__init__"
    return parts[1]


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def imports_of(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported blockmae module, names taken from it, line) for every import statement, at any depth."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "blockmae"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            elif (node.module or "").split(".")[0] == "blockmae":
                target = node.module
            else:
                continue
            names = [a.name for a in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            found += [(m, [], node.lineno) for m in submodules]
            found.append((target, [n for n in names if f"{target}.{n}" not in MODULES], node.lineno))
    return found


def test_the_layer_table_covers_every_unit():
    table = layer_table()
    units = {unit_of(m) for m in MODULES}
    assert units - set(table) == set(), "add these to the layer table in docs/design.md"
    assert set(table) - units == set(), "the layer table names units that do not exist"


def test_imports_point_down():
    table = layer_table()
    wrong = []
    for module, path in MODULES.items():
        src = unit_of(module)
        for target, _, line in imports_of(path):
            dst = unit_of(target)
            if dst != src and (table[dst] > table[src] or (table[dst] == table[src])):
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({src}, layer {table[src]}) imports {target} "
                             f"({dst}, layer {table[dst]})")
    assert wrong == []


def test_no_import_cycles():
    graph = {m: {t for t, _, _ in imports_of(p) if t in MODULES and t != m} for m, p in MODULES.items()}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert cycles == []


def test_no_private_names_cross_modules():
    files = list(SRC.rglob("*.py")) + list((ROOT / "tests").rglob("*.py")) + list((ROOT / "benchmarks").rglob("*.py"))
    private = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__" and (
                    node.level or (node.module or "").startswith("blockmae")):
                private += [f"{path.relative_to(ROOT)}:{node.lineno} imports {a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
    assert private == []


def test_no_source_file_is_over_the_limit():
    long = {str(p.relative_to(ROOT)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
