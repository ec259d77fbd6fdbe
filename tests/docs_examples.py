"""What the README and the documentation pages show, read from their Markdown: the shell commands of each
fenced block, the directives that say how a block is checked, and the repository files a page names.

Directives are HTML comments on the line before a block (invisible on the rendered page):

    <!-- doc-test: skip REASON -->   the block's commands are not run (a cluster, a benchmark, user data)
    <!-- doc-test: exit N -->        every command of the block ends with exit code N (default 0)
    <!-- doc-test: quick ARGS -->    ARGS (e.g. --set train.epochs=1) are added to the block's train, sweep
                                     and transfer commands: the small settings of the page (also --jobs 1
                                     for a sweep, whose results are the same for any number of jobs)
    <!-- doc-test: file PATH -->     the (YAML) block is the file PATH of the repository, line for line
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SHELL = {"bash", "console", "sh", "shell"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
DIRECTIVE = re.compile(r"<!-- doc-test: (skip|exit|quick|file) ?(.*?) -->\s*$")
# a run or sweep directory as dlrun names it: the page's timestamp stands for the newest one of that name
RUN_DIR = re.compile(r"runs/(?P<name>[A-Za-z0-9_.-]+?)-\d{8}-\d{6}(?:-\d+)?(?=/|\s|$)")
# files a page names, in code or prose: these must exist in a clone
NAMED_FILE = re.compile(r"(?<![\w./-])((?:configs|benchmarks|examples|docs/img|scripts|tests/bad_inputs)/[\w./-]*\w)")
TRAINING = {"train", "sweep", "transfer"}


@dataclass
class Command:
    """One command of a page: what runs, and how it must end."""

    page: str
    line: int
    text: str
    argv: list[str]
    exit: int = 0


@dataclass
class Block:
    """One fenced block and the directives before it."""

    page: str
    line: int
    lang: str
    body: str
    directives: dict[str, str] = field(default_factory=dict)


def pages() -> list[Path]:
    """README.md, then the site's pages in the order of mkdocs.yml's navigation."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    ordered: list[str] = []

    def walk(items: list) -> None:
        for item in items:
            for value in item.values() if isinstance(item, dict) else [item]:
                walk(value) if isinstance(value, list) else ordered.append(value)

    walk(config["nav"])
    return [ROOT / "README.md", *(ROOT / "docs" / p for p in ordered)]


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, each with the directives on the lines just before it."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").split("\n")
        directives: dict[str, str] = {}
        while before and DIRECTIVE.match(before[-1].strip()):
            kind, value = DIRECTIVE.match(before.pop().strip()).groups()
            directives[kind] = value
        found.append(Block(str(page.relative_to(ROOT)), line, match.group(1), match.group(2), directives))
    return found


def _lines(block: Block) -> list[tuple[int, str]]:
    """The block's command lines (continuations joined): `$ ` lines of a console block, every
    non-comment line of a bash block."""
    out: list[tuple[int, str]] = []
    pending = ""
    for offset, raw in enumerate(block.body.split("\n"), start=1):
        if pending:
            pending += " " + raw.strip()
        elif block.lang == "console":
            if not raw.startswith("$ "):
                continue
            pending = raw[2:].strip()
        else:
            pending = raw.strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        if pending and not pending.startswith("#"):
            out.append((block.line + offset, pending))
        pending = ""
    return out


def _argv(text: str) -> list[str] | None:
    """The argv of a command the test runs: dlrun (also .venv/bin/dlrun) or an examples/ script; None
    for the rest (make, tensorboard, ray, a shell builtin). Comments and a pipe's tail are dropped."""
    words = shlex.split(text.split(" | ")[0], comments=True)
    if not words:
        return None
    if words[0] in ("dlrun", ".venv/bin/dlrun"):
        return ["dlrun", *words[1:]]
    if words[0] in ("python", ".venv/bin/python") and len(words) > 1 and words[1].startswith("examples/"):
        return ["python", *words[1:]]
    return None


def commands(block: Block) -> list[Command]:
    """The commands of a shell block the test runs, with the block's quick settings and exit code."""
    if block.lang not in SHELL or "skip" in block.directives:
        return []
    quick = shlex.split(block.directives.get("quick", ""))
    expected = int(block.directives.get("exit", "0"))
    found = []
    for line, text in _lines(block):
        argv = _argv(text)
        if argv is None:
            continue
        if argv[0] == "dlrun" and len(argv) > 1 and argv[1] in TRAINING and "--resume" not in argv:
            argv = [*argv, *quick]
        found.append(Command(block.page, line, text, argv, expected))
    return found


def skipped(block: Block) -> list[str]:
    """The dlrun commands of a block marked skip (counted and shown, never run)."""
    if block.lang not in SHELL or "skip" not in block.directives:
        return []
    return [text for _, text in _lines(block) if _argv(text) is not None]


def resolve(argv: list[str], work: Path) -> list[str]:
    """Replace each run or sweep directory named with a timestamp (`runs/quickstart-20261124-101500`) by
    the newest one of that name under `work`/runs; LookupError when none was made."""
    out = []
    for word in argv:
        match = RUN_DIR.search(word)
        if match:
            name = match["name"]
            made = sorted((p for p in (work / "runs").glob(f"{name}-*")
                           if re.fullmatch(rf"{re.escape(name)}-\d{{8}}-\d{{6}}(-\d+)?", p.name)),
                          key=lambda p: (p.stat().st_mtime_ns, p.name))
            if not made:
                raise LookupError(f"no run named {name} was made before `{' '.join(argv)}`")
            word = word.replace(match.group(0), f"runs/{made[-1].name}")
        out.append(word)
    return out


def named_files(page: Path) -> set[str]:
    """Repository paths the page names (configs/..., benchmarks/..., examples/..., docs/img/...)."""
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    return {m.rstrip(".") for m in NAMED_FILE.findall(text) if "*" not in m and "…" not in m}
