"""No file in src/blockmae names a regime by a string literal: outside the regime table (`blockmae.regimes`) a
regime is named by the table's roles (`REFERENCE`, `DEFAULT`, `SEQUENTIAL`, `CONTINUATION`) or picked out by a
property of its entry, so that renaming or adding a regime touches the table alone (docs/design.md).

A literal is any string constant in the syntax tree (a subscript, an f-string's expression included) whose value
is exactly a regime's name; prose that mentions a regime inside a longer string is not one."""

import ast
from pathlib import Path

from blockmae.regimes import CONTINUATION, DEFAULT, REFERENCE, REGIMES, SEQUENTIAL

SRC = Path(__file__).resolve().parents[1] / "src" / "blockmae"

# Strings spelled like a regime that name something else: the bench's "e2e" row (its table's row names), and the
# old train.overlap key that config/legacy.py moves into train.regime_settings.
ALLOWED = {
    "regimes.py": set(REGIMES),
    "bench/configurations.py": {"e2e"},
    "bench/summary.py": {"e2e"},
    "config/legacy.py": {"overlap"},
}


def regime_literals(path: Path) -> list[tuple[int, str]]:
    """(line, name) for every string constant in `path` that is exactly a regime's name."""
    return sorted((node.lineno, node.value) for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in REGIMES)


def test_no_regime_name_is_a_literal_outside_the_table():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        allowed = ALLOWED.get(path.relative_to(SRC).as_posix(), set())
        found += [f"{path.relative_to(SRC)}:{line}: {name!r}" for line, name in regime_literals(path)
                  if name not in allowed]
    assert not found, ("regime names as literals (name them by a role in blockmae.regimes, or a property of the "
                       "entry, instead):\n" + "\n".join(found))


def test_the_check_finds_a_literal(tmp_path):
    source = tmp_path / "example.py"
    source.write_text('x = idx.get("e2e")\ny = f"{by[\'sequential\']} and e2e in prose"\n"""simultaneous"""\n')
    assert regime_literals(source) == [(1, "e2e"), (2, "sequential"), (3, "simultaneous")]


def test_the_roles_are_regimes_in_the_table():
    assert {REFERENCE, DEFAULT, SEQUENTIAL, CONTINUATION} <= set(REGIMES)
    assert not REGIMES[REFERENCE].blockwise and REGIMES[DEFAULT].blockwise
    assert REGIMES[SEQUENTIAL].phased and REGIMES[CONTINUATION].settings.__name__ == "FrozenStages"
