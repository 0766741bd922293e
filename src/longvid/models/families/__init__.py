"""The supported families: one adapter file each in this folder, and nothing else to edit.

This table is read from the files themselves without importing them (so help texts need no
torch): every module here (but ``adapter``, the base class) whose adapter class names its
``model_types`` is a family. ``checkpoint.registry`` imports the same modules to serve them;
tests, help texts and the docs' tables derive from ``FAMILIES``.
"""

from __future__ import annotations

import ast
from pathlib import Path

HERE = Path(__file__).parent
NOT_FAMILIES = {"__init__", "adapter"}


def model_types_in(path: Path) -> tuple[str, ...]:
    """The ``model_types`` literal of the first class in ``path`` that sets one (none: ())."""
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt in node.body:
            target = stmt.target if isinstance(stmt, ast.AnnAssign) else None
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target = stmt.targets[0]
            if isinstance(target, ast.Name) and target.id == "model_types" and stmt.value is not None:
                return tuple(ast.literal_eval(stmt.value))
    return ()


def family_modules(folder: Path = HERE) -> dict[str, tuple[str, ...]]:
    """Module name -> the model types it serves, for every family file in ``folder``."""
    found = {}
    for path in sorted(folder.glob("*.py")):
        if path.stem in NOT_FAMILIES:
            continue
        types = model_types_in(path)
        if types:
            found[path.stem] = types
    return found


FAMILY_MODULES = family_modules()
FAMILIES = tuple(t for types in FAMILY_MODULES.values() for t in types)
