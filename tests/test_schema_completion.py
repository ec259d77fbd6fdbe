"""The editor schema (`dlrun schema`, the committed dlrun.schema.json, the shipped configs checked against
it with jsonschema) and shell completion driven through the real bash completion script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import NO_TF_PROBE, ROOT, cli_env, deep_merge, run_cli

from dlrun.config.editor_schema import MODELINE, SCHEMA_FILE, schema_text
from dlrun.config.layers import LAYER_TYPES

SHIPPED = sorted((ROOT / "configs").glob("*.yaml"))


def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((ROOT / SCHEMA_FILE).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_dlrun_schema_prints_the_committed_file_without_tensorflow() -> None:
    proc = subprocess.run([sys.executable, "-c", NO_TF_PROBE, "schema"], capture_output=True, text=True,
                          env=cli_env(), cwd=ROOT, timeout=120)
    assert (proc.stdout == (ROOT / SCHEMA_FILE).read_text(), proc.stderr.splitlines()[-1]) == (
        True, "TF_LOADED=False"), "regenerate it: make docs (or dlrun schema --out dlrun.schema.json)"


def test_schema_out_writes_the_file(tmp_path: Path) -> None:
    proc = run_cli("schema", "--out", tmp_path / "s.json")
    assert (proc.returncode, proc.stdout, (tmp_path / "s.json").read_text()) == (0, "", schema_text())


@pytest.mark.parametrize("config", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_points_at_the_schema_and_validates(config: Path) -> None:
    text = config.read_text()
    errors = [e.message for e in validator().iter_errors(yaml.safe_load(text))]
    assert (text.splitlines()[0], errors) == (MODELINE, [])


@pytest.mark.parametrize("change", [
    {"train": {"epohcs": 3}},
    {"optimizer": {"lrr": 0.1}},
    {"model": {"layers": [{"conv2d": {"filter": 8, "kernel_size": 3}}, {"flatten": None},
                          {"dense": {"units": 10}}]}},
    {"model": {"layers": [{"dens": {"units": 10}}]}},
], ids=["train.epohcs", "optimizer.lrr", "conv2d.filter", "layer dens"])
def test_misspelt_key_fails_the_schema(change: dict[str, Any]) -> None:
    data = deep_merge(yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text()), change)
    assert list(validator().iter_errors(data)) != []


def test_schema_describes_every_key_and_lists_every_layer_type() -> None:
    schema = json.loads(schema_text())
    undescribed = [f"{name}.{key}" for name, definition in schema["$defs"].items()
                   for key, prop in definition.get("properties", {}).items() if not prop.get("description")]
    items = {key for definition in schema["$defs"].values() if definition["title"].endswith("Item")
             for key in definition["properties"]}
    assert (undescribed, items, {"sweep", "transfer"} <= set(schema["properties"])) == ([], set(LAYER_TYPES), True)


@pytest.fixture(scope="module")
def bash_complete(tmp_path_factory: pytest.TempPathFactory):
    """complete(words) -> the suggestions bash gets from `dlrun --show-completion bash`'s own script,
    in a folder with configs/ and runs/ (a run, a sweep with a trial)."""
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    work = tmp_path_factory.mktemp("complete")
    bin_dir = work / "bin"
    bin_dir.mkdir()
    (bin_dir / "dlrun").write_text(f"#!/bin/sh\nexec {sys.executable} -m dlrun \"$@\"\n")
    (bin_dir / "dlrun").chmod(0o755)
    (work / "configs").mkdir()
    for name in ("quickstart.yaml", "notes.txt"):
        (work / "configs" / name).write_text("name: x\n")
    for run in ("runs/quick-1", "runs/lr-sweep-1/trials/000"):
        (work / run).mkdir(parents=True)
        (work / run / "config.yaml").write_text("name: x\n")
    (work / "runs/lr-sweep-1/sweep.yaml").write_text("name: x\n")
    env = cli_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    shown = subprocess.run(["dlrun", "--show-completion", "bash"], capture_output=True, text=True, env=env,
                           cwd=work, timeout=60)
    assert shown.returncode == 0 and "_dlrun_completion" in shown.stdout, (shown.returncode, shown.stderr[-2000:])
    script = shown.stdout

    def complete(words: str) -> list[str]:
        parts = words.split(" ")
        drive = (f"{script}\nCOMP_WORDS=({' '.join(repr(p) for p in parts)}); COMP_CWORD={len(parts) - 1}\n"
                 "_dlrun_completion dlrun; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
        proc = subprocess.run(["bash", "--norc", "-c", drive], capture_output=True, text=True, env=env, cwd=work,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return [line for line in proc.stdout.splitlines() if line]
    return complete


@pytest.mark.parametrize(("words", "expected"), [
    ("dlrun tr", ["train", "transfer", "track"]),
    ("dlrun train con", ["configs/quickstart.yaml"]),
    ("dlrun train --resume ", ["runs/lr-sweep-1/", "runs/quick-1"]),
    ("dlrun evaluate runs/lr", ["runs/lr-sweep-1/trials/000"]),
    ("dlrun sweep --resume ", ["runs/lr-sweep-1"]),
    ("dlrun train --set optimizer.n", ["optimizer.name=", "optimizer.nesterov="]),
    ("dlrun train --set optimizer.name=ad", ["optimizer.name=adam", "optimizer.name=adagrad", "optimizer.name=adamw"]),
    ("dlrun cache ", ["info", "clear"]),
], ids=["command", "config", "resume", "trial", "sweep-resume", "set-key", "set-value", "cache"])
def test_bash_completion_suggests(bash_complete, words: str, expected: list[str]) -> None:
    assert bash_complete(words) == expected


def test_completion_does_not_import_tensorflow() -> None:
    env = cli_env(_DLRUN_COMPLETE="complete_bash", COMP_WORDS="dlrun train --set optimizer.l", COMP_CWORD="3")
    proc = subprocess.run([sys.executable, "-c", NO_TF_PROBE], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)
    assert (proc.stdout.split(), proc.stderr.splitlines()[-1]) == (["optimizer.lr=", "optimizer.lr=0.01"],
                                                                   "TF_LOADED=False")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_show_completion_gives_each_shell_its_script(shell: str) -> None:
    # Typer detects the user's shell; its test switch lets the option name one instead
    proc = run_cli("--show-completion", shell, env=cli_env(_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1"))
    assert (proc.returncode, "_DLRUN_COMPLETE" in proc.stdout, f"complete_{shell}" in proc.stdout) == (0, True, True)
