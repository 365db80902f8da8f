"""The lock that scripts/setup.sh installs agrees with pyproject.toml and raylung's imports.

requirements.lock pins raylung[test]'s whole dependency tree except torch (setup.sh installs the
CPU or CUDA build itself); requirements-build.lock pins pip, setuptools, wheel and uv. When a test
here fails, fix pyproject.toml and refresh the lock with `bash scripts/lock.sh`.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Declared in pyproject but installed by scripts/setup.sh itself, outside the lock.
OUTSIDE_LOCK = {canonicalize_name("torch")}
REFRESH = "fix pyproject.toml, then refresh the lock: bash scripts/lock.sh"


def read_pins(path: Path) -> dict[NormalizedName, Version]:
    """A lock file's `name==version` lines by PEP 503 name; anything else fails, naming the line."""
    pins: dict[NormalizedName, Version] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        assert match, f"{path.name}:{number}: {line!r} is not a name==version pin"
        name = canonicalize_name(match[1])
        assert name not in pins, f"{path.name}: {name} is pinned twice"
        pins[name] = Version(match[2])
    return pins


LOCK = read_pins(ROOT / "requirements.lock")
BUILD_LOCK = read_pins(ROOT / "requirements-build.lock")


def requirements(*groups: str) -> list[Requirement]:
    """pyproject's requirements in `dependencies` or the named extras, where their markers hold."""
    lines = [line for group in groups for line in
             (PROJECT["project"]["dependencies"] if group == "dependencies"
              else PROJECT["project"]["optional-dependencies"][group])]
    reqs = [Requirement(line) for line in lines]
    return [req for req in reqs if req.marker is None or req.marker.evaluate()]


def unsatisfied(reqs: list[Requirement], pins: dict[NormalizedName, Version],
                source: str) -> list[str]:
    """Why `pins` does not satisfy `reqs` (empty when it does); OUTSIDE_LOCK is skipped."""
    problems, reported = [], set(OUTSIDE_LOCK)
    for req in reqs:
        name = canonicalize_name(req.name)
        if name in reported:  # one line per package
            continue
        wanted = str(req).split(";")[0].strip()  # without the marker
        if name not in pins:
            problems.append(f"{req.name}: {source} requires {wanted}, the lock has no pin for it")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}: the lock pins {pins[name]}, {source} requires {wanted}")
        else:
            continue
        reported.add(name)
    return problems


def test_lock_satisfies_pyproject() -> None:
    problems = unsatisfied(requirements("dependencies", "test"), LOCK, "pyproject.toml")
    build = [Requirement(line) for line in PROJECT["build-system"]["requires"]]
    problems += unsatisfied(build, BUILD_LOCK, "pyproject.toml's build-system")
    assert not problems, "\n".join(problems + [REFRESH])


def test_lock_covers_requested_extras() -> None:
    """What `ray[default,...]` and `moto[server]` add is pinned too (from the installed metadata,
    which is only that of the pinned release when the environment was installed from the lock)."""
    problems, checked = [], 0
    for req in requirements("dependencies", "test"):
        name = canonicalize_name(req.name)
        if not req.extras or name not in LOCK:
            continue
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if Version(dist.version) != LOCK[name]:
            continue
        checked += 1
        # the extras' own requirements and the base ones, as pip would install them here
        reqs = [sub for sub in map(Requirement, dist.requires or []) if sub.marker is None
                or any(sub.marker.evaluate({"extra": extra}) for extra in req.extras | {""})]
        problems += unsatisfied(reqs, LOCK, f"{req.name}[{','.join(sorted(req.extras))}]")
    if not checked:
        pytest.skip("no package with extras is installed at its locked version (scripts/setup.sh)")
    assert not problems, "\n".join(problems + [REFRESH])


def raylung_imports() -> dict[str, tuple[str, bool]]:
    """Top-level third-party modules that raylung/ imports -> (first file, whether some import of
    it runs when its module is imported, i.e. is not inside a function)."""
    found: dict[str, tuple[str, bool]] = {}

    def visit(node: ast.AST, where: str, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            for module in {name.split(".")[0] for name in names}:
                if module in sys.stdlib_module_names or module == "raylung":
                    continue
                first, eager = found.get(module, (where, False))
                found[module] = (first, eager or not in_function)
            visit(child, where, in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    for path in sorted((ROOT / "raylung").rglob("*.py")):
        where = str(path.relative_to(ROOT))
        visit(ast.parse(path.read_text(), where), where, False)
    return found


IMPORTS = raylung_imports()


@pytest.fixture(scope="module")
def module_distributions() -> dict[str, list[str]]:
    """Each module raylung imports -> the installed distributions providing it; a module that none
    provides fails here, named."""
    provided = importlib.metadata.packages_distributions()
    missing = sorted(f"{module} (imported in {where})" for module, (where, _) in IMPORTS.items()
                     if module not in provided)
    assert not missing, ("no installed distribution provides " + ", ".join(missing)
                         + "; install the environment with: bash scripts/setup.sh")
    return {module: sorted(set(provided[module])) for module in IMPORTS}


def canonical(dists: list[str]) -> set[NormalizedName]:
    """PEP 503 names, as the lock and pyproject are compared."""
    return {canonicalize_name(dist) for dist in dists}


def test_lock_covers_raylung_imports(module_distributions: dict[str, list[str]]) -> None:
    declared = {canonicalize_name(req.name) for req in requirements("dependencies")}
    problems = []
    for module, dists in sorted(module_distributions.items()):
        # torch comes from setup.sh, so being declared in pyproject is its coverage
        if not canonical(dists) & (LOCK.keys() | (OUTSIDE_LOCK & declared)):
            why = ("scripts/setup.sh installs it outside the lock, but pyproject.toml does not "
                   "declare it" if canonical(dists) & OUTSIDE_LOCK else "requirements.lock does "
                   "not pin it")
            problems.append(f"{'/'.join(dists)}: raylung imports {module} "
                            f"({IMPORTS[module][0]}); {why}")
    assert not problems, "\n".join(problems + [REFRESH])


def test_raylung_imports_are_declared(module_distributions: dict[str, list[str]]) -> None:
    """Each imported distribution is in pyproject's `dependencies`; one imported only inside
    functions (an optional feature, e.g. mlflow, optuna) may instead be in a feature extra."""
    extras = PROJECT["project"]["optional-dependencies"]
    declared = {canonicalize_name(req.name) for req in requirements("dependencies")}
    optional = {canonicalize_name(req.name)
                for req in requirements(*(extra for extra in extras if extra != "test"))}
    problems = []
    for module, dists in sorted(module_distributions.items()):
        where, eager = IMPORTS[module]
        if canonical(dists) & (declared if eager else declared | optional):
            continue
        place = "dependencies" if eager else "dependencies or a feature extra"
        problems.append(f"{'/'.join(dists)}: raylung imports {module} ({where}) "
                        f"but pyproject.toml does not declare it in {place}")
    assert not problems, "\n".join(problems + [REFRESH])
