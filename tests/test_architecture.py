"""The layering of ``src/longvid``: no import cycles (lazy imports inside functions count),
no arrow from a lower layer to a higher one, no source file over the size limit."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "longvid"
MAX_LINES = 400

# each layer may import only from the layers listed for it (and from itself)
LEAVES = {"errors", "progress", "memory", "bundled", "lr", "ahead"}
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
    from longvid.models.checkpoint.registry import ADAPTERS
    from longvid.models.families import FAMILIES

    assert tuple(t for adapter in ADAPTERS for t in adapter.model_types) == FAMILIES


def test_a_new_family_file_is_picked_up(tmp_path, monkeypatch):
    """A family is one file: dropped into a family folder, it is in the torch-free table
    (read, not imported) and served by the registry's discovery, with nothing else edited."""
    from longvid.models.checkpoint.registry import discover_adapters
    from longvid.models.families import family_modules

    package = tmp_path / "toy_families"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "adapter.py").write_text("raise RuntimeError('the base class is not a family')\n")
    (package / "toy_vl.py").write_text(
        "from longvid.models.families.llava_onevision import LlavaOnevisionAdapter\n\n\n"
        "class ToyAdapter(LlavaOnevisionAdapter):\n"
        '    model_types = ("toy_vl", "toy_vl_moe")\n'
        '    tiny_special_tokens = ("<toy>",)\n'
    )
    (package / "notes.py").write_text("X = 1\n")  # no adapter: not a family
    modules = family_modules(package)
    assert modules == {"toy_vl": ("toy_vl", "toy_vl_moe")}
    monkeypatch.syspath_prepend(str(tmp_path))
    (adapter,) = discover_adapters(modules, package="toy_families")
    assert adapter.__name__ == "ToyAdapter" and adapter.tiny_special_tokens == ("<toy>",)


def test_family_files_are_the_only_list():
    """No hand-written list of (nearly) every family in the sources or tests: such a list goes
    stale when a family file is added. A test may pick a few families; it may not list them all."""
    from longvid.models.families import FAMILIES

    offenders = []
    for root in (SRC, SRC.parents[1] / "tests"):
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.List | ast.Tuple | ast.Set):
                    names = {e.value for e in node.elts if isinstance(e, ast.Constant)} & set(FAMILIES)
                    if len(names) >= len(FAMILIES) - 1:
                        offenders.append(f"{path.name}:{node.lineno}")
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    listed = sum(f in node.value.split(", ") for f in FAMILIES)
                    if listed >= len(FAMILIES) - 1:
                        offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, offenders
