"""The README and the documentation pages cannot drift from dlrun: every command they show is run and
ends as the page says, every repository file they name exists, the README stays short.

The commands run in one scratch folder, README first and then the pages in navigation order, as a
reader would meet them: a page's `runs/quickstart-20261124-101500` stands for the newest quickstart run
made so far. How a block is checked is said by the directives in tests/docs_examples.py. Commands that
repeat one shown earlier (same words) run once. They run through dlrun's command line in one process
(tests/docs_runner.py), so TensorFlow starts once; the CLI's contract as a process (exit codes, stderr,
signals) has its own subprocess tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import docs_examples as docs
import pytest
import yaml
from conftest import cli_env

ROOT = docs.ROOT
PAGES = docs.pages()
LINKED = ("configs", "examples", "tests", "dlrun.schema.json")  # what the pages' commands read from the clone
README_MAX_LINES = 250


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Every page's commands, run in order in one scratch folder by tests/docs_runner.py (one process,
    the command line itself): page -> the problems found (empty when every command ended as shown)."""
    work = tmp_path_factory.mktemp("docs-examples")
    for name in LINKED:
        (work / name).symlink_to(ROOT / name)
    shown = [(str(page.relative_to(ROOT)), c) for page in PAGES for b in docs.blocks(page) for c in docs.commands(b)]
    unique: dict[str, docs.Command] = {}
    for _, command in shown:
        unique.setdefault(" ".join(command.argv), command)
    (work / ".commands.json").write_text(json.dumps([c.argv for c in unique.values()]))
    env = cli_env(DLRUN_CACHE=str(work / ".cache"), KERAS_HOME=str(work / ".keras"), DLRUN_TF_LOG=os.devnull,
                  COLUMNS="120", PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "docs_runner.py"), ".commands.json", ".results.json"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=900)
    print(proc.stderr[-6000:])
    results = json.loads((work / ".results.json").read_text()) if (work / ".results.json").exists() else []
    by_command = {key: result for key, result in zip(unique, results, strict=False)}
    problems: dict[str, list[str]] = {str(p.relative_to(ROOT)): [] for p in PAGES}
    for page, command in shown:
        result = by_command.get(" ".join(command.argv))
        if result is None:
            problems[page].append(f"{page}:{command.line}: `{command.text}` did not run\n{proc.stderr[-1500:]}")
        elif result["exit"] != command.exit:
            problems[page].append(f"{page}:{command.line}: `{' '.join(result['argv'])}` exited {result['exit']}, "
                                  f"the page says {command.exit}\n{result['stderr'][-1500:]}")
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("page", [str(p.relative_to(ROOT)) for p in PAGES])
def test_page_commands_end_as_the_page_says(ran: dict[str, list[str]], page: str) -> None:
    assert ran[page] == [], "\n\n".join(ran[page])


def test_pages_show_commands_and_few_are_skipped() -> None:
    """The examples are run, not excused: count them, and the blocks marked skip."""
    run = [c for p in PAGES for b in docs.blocks(p) for c in docs.commands(b)]
    skips = [c for p in PAGES for b in docs.blocks(p) for c in docs.skipped(b)]
    print(f"{len(run)} commands run, {len(skips)} shown but skipped")
    assert len(run) >= 30
    assert len(skips) <= len(run) // 4


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


@pytest.mark.parametrize("page", [str(p.relative_to(ROOT)) for p in PAGES])
def test_every_file_a_page_names_exists(page: str) -> None:
    missing = sorted(f for f in docs.named_files(ROOT / page) if not (ROOT / f).exists())
    assert missing == []


@pytest.mark.parametrize("page", [str(p.relative_to(ROOT)) for p in PAGES])
def test_shown_files_are_the_repository_files(page: str) -> None:
    """A block marked `file PATH` is that file, so a reader who copies it gets what the test ran."""
    for block in docs.blocks(ROOT / page):
        if "file" in block.directives:
            assert block.body == (ROOT / block.directives["file"]).read_text(encoding="utf-8"), block.line


def test_every_shipped_config_is_in_the_table() -> None:
    configs = {p.name for p in (ROOT / "configs").glob("*.yaml")}
    table = (ROOT / "docs" / "configs.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([\w.-]+\.yaml)`", table, flags=re.MULTILINE))
    assert rows == configs


def test_every_page_is_in_the_navigation() -> None:
    nav = {str(p.relative_to(ROOT / "docs")) for p in PAGES[1:]}
    on_disk = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk == nav
    assert yaml.safe_load((ROOT / "mkdocs.yml").read_text())["theme"]["font"] is False  # nothing fetched
