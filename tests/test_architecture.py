"""The layering of ``src/longvid``: no import cycles (lazy imports inside functions count),
no arrow from a lower layer to a higher one, no source file over the size limit."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "longvid"
MAX_LINES = 400

# each layer may import only from the layers listed for it (and from itself)
LEAVES = {"errors", "progress", "memory", "bundled", "lr"}
ALLOWED = {
    "video": set(),
    "extend": set(),
    "models": {"video", "extend"},
    "encoder": {"video", "extend"},  # the encoder knows no language model
    "testbed": {"video", "extend", "models", "probes"},  # trains on probe tasks, scores with the runner
    "probes": {"video", "extend", "models"},
    "evals": {"video", "extend", "models", "probes"},
    "web": {"video", "extend", "models", "probes", "evals", "testbed"},
    "cli": {"video", "extend", "models", "probes", "evals", "testbed", "encoder", "web"},
    "__main__": {"cli"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every longvid module ``path`` imports, at the top or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("longvid"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("longvid"))
    return out


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    return {m: {i for i in imports_of(p) if i in files and i != m} for m, p in files.items()}


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_no_upward_imports():
    bad = []
    for module, targets in graph().items():
        src = layer(module)
        if src in LEAVES or src is None:  # leaves import only leaves; longvid/__init__ is the facade
            bad += [f"{module} -> {t}" for t in targets if src in LEAVES and layer(t) not in LEAVES]
            continue
        allowed = ALLOWED[src] | LEAVES | {src}
        bad += [f"{module} -> {t}" for t in targets if layer(t) not in allowed]
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_import_cycles():
    g = graph()
    # package __init__ files re-export their own modules: an edge into one's own package's
    # __init__ is not a cycle through code
    edges = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in g.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join([*stack[stack.index(t) :], t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_file_over_the_size_limit():
    big = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"files over {MAX_LINES} lines: {big}"


def test_the_checker_sees_lazy_imports():
    # the probe command imports the runner inside its function body, not at the top
    assert "longvid.probes.runner" in graph()["longvid.cli.measure"]
    source = (SRC / "cli" / "measure.py").read_text()
    assert "from longvid.probes.runner import" not in source.split("def probe(")[0]


def test_family_names_match_the_adapters():
    from longvid.models.families import FAMILIES
    from longvid.models.registry import ADAPTERS

    assert tuple(t for adapter in ADAPTERS for t in adapter.model_types) == FAMILIES
