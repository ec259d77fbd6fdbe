"""The layout stays what the docs say: small modules and functions, a documented public API that
loads nothing heavy, a described schema, and docs whose reference, benchmark table and tree match the code."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, cli_env
from pydantic import BaseModel

import dlrun
from dlrun.config import reference
from dlrun.config.keys import unwrap_models
from dlrun.config.layers import LAYER_TYPES
from dlrun.config.schema import ExperimentConfig

PACKAGE = ROOT / "dlrun"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
PUBLIC_COMMANDS = ("train", "evaluate", "sweep", "transfer", "resume", "validate", "load_config", "list_runs",
                   "compare_runs")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_stays_under_300_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES


def test_no_function_is_over_60_lines() -> None:
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert long == []


def test_public_api_is_exported_with_args_returns_raises() -> None:
    missing = [name for name in PUBLIC_COMMANDS if name not in dlrun.__all__]
    undocumented = [name for name in PUBLIC_COMMANDS
                    if not all(part in (inspect.getdoc(getattr(dlrun, name)) or "")
                               for part in ("Args:", "Returns:", "Raises:"))]
    assert (missing, undocumented) == ([], [])


def test_import_dlrun_and_its_api_names_load_no_heavy_library() -> None:
    probe = ("import sys, dlrun\n"
             "assert callable(dlrun.validate) and callable(dlrun.load_config)\n"
             "heavy = ('tensorflow', 'keras', 'optuna', 'ray', 'matplotlib')\n"
             "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy}))\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=cli_env(), cwd=ROOT,
                          timeout=120)
    assert proc.stdout.strip() == "[]", proc.stderr


def _sections() -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    stack: list[type[BaseModel]] = [ExperimentConfig, *(kind.args for kind in LAYER_TYPES.values())]
    while stack:
        model = stack.pop()
        if model in seen:
            continue
        seen.append(model)
        for info in model.model_fields.values():
            stack.extend(unwrap_models(info.annotation))
    return seen


def test_every_config_key_has_a_description() -> None:
    bare = [f"{model.__name__}.{name}" for model in _sections() for name, info in model.model_fields.items()
            if not (info.description or "").strip()]
    assert bare == []


def test_config_reference_page_is_the_generated_one() -> None:
    assert reference.markdown() in (ROOT / "docs" / "reference.md").read_text(), "run `make docs` to regenerate it"


def test_performance_page_holds_the_benchmark_results() -> None:
    spec = importlib.util.spec_from_file_location("docs_performance", ROOT / "scripts" / "docs_performance.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    page = (ROOT / "docs" / "performance.md").read_text()
    assert tables.markdown(results) in page, "run `make docs`"
    assert "## Sweeps that search" in tables.sections(results)
    assert tables.sections(results) in page, "run `make docs`"


def test_design_page_tree_names_every_package() -> None:
    page = (ROOT / "docs" / "design.md").read_text()
    tree = page[page.index("## The layout"):]
    named = set(re.findall(r"^[├└]── (\w+)/", tree, flags=re.MULTILINE))
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert named == packages
