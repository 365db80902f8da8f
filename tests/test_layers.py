"""Imports run one way, bottom to top: I/O and math (which know no config), then the config,
the data plane, Ray Train and Tune, and the CLI on top. A module may import its own part and
any part of a lower layer, never a higher one; the networks and losses import no Ray at all
(they run anywhere torch does)."""

from __future__ import annotations

import ast
from pathlib import Path

import raylung

PACKAGE = Path(raylung.__file__).parent
LAYERS = [  # bottom first
    {"secrets", "seeds", "console"},
    {"errors"},  # an error's last line is redacted
    {"io", "preprocess", "losses", "models"},  # no config: they take their own numbers
    {"plots"},
    {"store", "evaluate", "config"},
    {"phantom", "networks", "runtime"},
    {"data"},
    {"ingest"},
    {"segment"},
    {"train", "synth"},
    {"tune"},
    {"cli"},
    {"__main__"},
]
WITHOUT_RAY = {"models", "losses", "networks"}


def _part(path: Path) -> str:
    """The package part a module belongs to: its subpackage, or its own name at the top."""
    rel = path.relative_to(PACKAGE).with_suffix("").parts
    return rel[0]


def _imports(path: Path) -> list[str]:
    """Absolute module names ``path`` imports; a relative import is ``"."`` (none allowed)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module if node.level == 0 else ".")
    return names


def _layer(part: str) -> int:
    return next(i for i, parts in enumerate(LAYERS) if part in parts)


def _modules() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if _part(p) != "__init__"]


def test_every_part_has_a_layer():
    assert {_part(p) for p in _modules()} == set().union(*LAYERS)


def test_imports_go_down_only():
    upward = set()
    for path in _modules():
        part = _part(path)
        for name in _imports(path):
            target = name.split(".")[1] if name.startswith("raylung.") else None
            if target and target != part and _layer(target) >= _layer(part):
                upward.add(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not upward


def test_imports_are_absolute():
    """A relative import would slip past the layer check above."""
    assert not {str(path.relative_to(PACKAGE)) for path in _modules() if "." in _imports(path)}


def test_networks_and_losses_import_no_ray():
    found = {f"{path.relative_to(PACKAGE)}: {name}" for path in _modules()
             if _part(path) in WITHOUT_RAY for name in _imports(path)
             if name.split(".")[0] == "ray"}
    assert not found
