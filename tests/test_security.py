"""Security properties of the source and of run names: no eval/exec/pickle, YAML through the
safe loader only, arrays without pickle, Keras models only in safe mode, names that stay inside
the runs folder."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT, run_cli, write_config

from dlrun.errors import RunDirError
from dlrun.store import rundir

SOURCES = sorted((ROOT / "dlrun").rglob("*.py"))


def calls(name: str) -> list[tuple[str, ast.Call]]:
    """Every call of a function or method called `name` in dlrun's source, with its file:line."""
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if called == name:
                    found.append((f"{path.relative_to(ROOT)}:{node.lineno}", node))
    return found


def keyword(call: ast.Call, name: str) -> str | None:
    """The source text of keyword argument `name` of a call (None when absent)."""
    return next((ast.unparse(k.value) for k in call.keywords if k.arg == name), None)


def test_no_eval_exec_or_compile() -> None:
    builtins = [where for name in ("eval", "exec", "compile", "__import__") for where, call in calls(name)
                if isinstance(call.func, ast.Name)]  # re.compile and the like are fine
    assert builtins == []


def test_no_pickle() -> None:
    imports = [path.name for path in SOURCES if "import pickle" in path.read_text() or "cPickle" in path.read_text()]
    assert imports == []


def test_yaml_is_only_read_with_the_safe_loader() -> None:
    unsafe = [where for where, call in calls("load") + calls("load_all")
              if "yaml" in ast.unparse(call.func) and keyword(call, "Loader") != "yaml.SafeLoader"]
    assert unsafe == []


def test_numpy_never_unpickles() -> None:
    unsafe = [where for where, call in calls("load")
              if ast.unparse(call.func) == "np.load" and keyword(call, "allow_pickle") != "False"]
    assert unsafe == []


def test_keras_models_load_only_in_safe_mode() -> None:
    # weights.py reads .keras archives with zipfile + h5py and deserialises no code at all; any
    # keras load_model call must keep safe mode on (an explicit --unsafe may pass a variable)
    unsafe = [where for where, call in calls("load_model") if keyword(call, "safe_mode") in (None, "False")]
    assert unsafe == []


@pytest.mark.parametrize("name", ["../evil", "..", "a/b", "/abs", ".hidden", "a\\b", "", "x/../../y"])
def test_unsafe_run_names_are_refused(name: str) -> None:
    with pytest.raises(RunDirError):
        rundir.safe_name(name)


@pytest.mark.parametrize("name", ["quickstart", "fashion_cnn-2", "v1.5"])
def test_plain_run_names_are_accepted(name: str) -> None:
    assert rundir.safe_name(name) == name


def test_cli_run_name_cannot_leave_the_runs_folder(tmp_path: Path) -> None:
    config = write_config(tmp_path, name="c.yaml")
    work = tmp_path / "work"
    work.mkdir()
    proc = run_cli("train", config, "--set", "name=../../evil", "--runs", "runs", cwd=work)
    assert (proc.returncode, sorted(p.name for p in tmp_path.rglob("*"))) == (2, ["c.yaml", "work"])


def test_csv_cells_that_a_spreadsheet_would_run_stay_text_and_numbers_stay_numbers(tmp_path: Path) -> None:
    from dlrun.store import files

    path = tmp_path / "x.csv"
    files.write_csv(path, ["source", "-col", "value"], [
        {"source": "=HYPERLINK(\"http://x\")", "-col": "@SUM(A1)", "value": -0.5},
        {"source": "\tcmd", "-col": "-0.5", "value": float("-inf")}, {"source": "a-b", "value": 1e-5}])
    assert files.read_csv(path) == [
        {"source": "'=HYPERLINK(\"http://x\")", "'-col": "'@SUM(A1)", "value": "-0.5"},
        {"source": "'\tcmd", "'-col": "-0.5", "value": "-inf"}, {"source": "a-b", "'-col": "", "value": "1e-05"}]
