"""Shell completion candidates for the CLI's arguments: config files, run and sweep directories,
weights files, and dotted config keys for `--set`. Each function takes what the user has typed so
far and returns the candidates that extend it. They read only the file system and the config schema
(never TensorFlow), so pressing Tab answers at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from dlrun.store import names

CONFIG_SUFFIXES = (".yaml", ".yml")
WEIGHTS_SUFFIXES = (".h5", ".hdf5", ".keras")
MAX_CANDIDATES = 200


def _listing(incomplete: str) -> tuple[str, Path, str]:
    """(the typed folder part with its slash, that folder, the typed start of the name)."""
    head, _, tail = incomplete.rpartition("/")
    prefix = f"{head}/" if head or incomplete.startswith("/") else ""
    return prefix, Path(head or ("/" if incomplete.startswith("/") else ".")), tail


def _entries(folder: Path, start: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            found = [e for e in it if e.name.startswith(start) and (start.startswith(".") or e.name[0] != ".")]
    except OSError:
        return []
    return sorted(found, key=lambda e: e.name)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def config_files(incomplete: str) -> list[str]:
    """`.yaml` files starting with `incomplete`, also one folder down (`con` -> configs/quickstart.yaml)."""
    prefix, folder, start = _listing(incomplete)
    out: list[str] = []
    for entry in _entries(folder, start):
        if _is_dir(entry):
            out += [f"{prefix}{entry.name}/{inner.name}" for inner in _entries(Path(entry.path), "")
                    if inner.name.endswith(CONFIG_SUFFIXES) and not _is_dir(inner)]
        elif entry.name.endswith(CONFIG_SUFFIXES):
            out.append(prefix + entry.name)
    return out[:MAX_CANDIDATES]


def _is_run(path: Path) -> bool:
    return (path / names.CONFIG).is_file() or (path / names.SUMMARY).is_file()


def _is_sweep(path: Path) -> bool:
    return (path / names.SWEEP_SPEC).is_file()


def _directories(incomplete: str, accept: tuple[str, ...], weights: bool = False) -> list[str]:
    """Run (`run`) or sweep (`sweep`) directories extending `incomplete`; nothing typed: those under
    runs/. A matching folder that is neither is offered with a slash, to go on into it."""
    if not incomplete and Path(names.DEFAULT_RUNS_ROOT).is_dir():
        incomplete = f"{names.DEFAULT_RUNS_ROOT}/"
    prefix, folder, start = _listing(incomplete)
    inside = "sweep" if _is_sweep(folder) else "run" if _is_run(folder) else None
    out: list[str] = []
    for entry in _entries(folder, start):
        path = Path(entry.path)
        if _is_dir(entry) and (inside is None or (inside == "sweep" and entry.name == names.SWEEP_TRIALS)):
            kind = "sweep" if _is_sweep(path) else "run" if _is_run(path) else None
            if kind in accept:
                out.append(prefix + entry.name)
            elif kind is None or (kind == "sweep" and "run" in accept):
                out.append(f"{prefix}{entry.name}/")  # runs/, a sweep's trials/, ...: go on into it
        elif weights and entry.name.endswith(WEIGHTS_SUFFIXES) and not _is_dir(entry):
            out.append(prefix + entry.name)
    if len(out) == 1 and out[0].endswith("/") and out[0] != incomplete:  # one way on: show what is in it
        return _directories(out[0], accept, weights) or out
    return out[:MAX_CANDIDATES]


def run_dirs(incomplete: str) -> list[str]:
    """Run directories (a sweep's trials too) for `--resume` and `runs --compare`."""
    return _directories(incomplete, ("run",))


def eval_targets(incomplete: str) -> list[str]:
    """Run directories and weights files (.weights.h5, .keras, .h5) for `evaluate` and `--from`."""
    return _directories(incomplete, ("run",), weights=True)


def sweep_dirs(incomplete: str) -> list[str]:
    """Sweep directories for `sweep --resume`."""
    return _directories(incomplete, ("sweep",))


def _config_data(config: str | Path | None) -> object:
    """The config file's plain YAML data (unvalidated), to complete list indices; None when unreadable."""
    if not config:
        return None
    import yaml

    try:
        return yaml.safe_load(Path(config).read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None


def _value_choices(annotation: object, default: object) -> list[str]:
    """What a value can be, as --set takes it: a Literal's words, true/false, else the default."""
    import types
    import typing

    options, stack = [], [annotation]
    while stack:
        ann = stack.pop(0)
        origin = typing.get_origin(ann)
        if origin is typing.Literal:
            options += [str(a) for a in typing.get_args(ann)]
        elif origin in (typing.Union, types.UnionType, typing.Annotated):
            stack += list(typing.get_args(ann)) if origin is not typing.Annotated else [typing.get_args(ann)[0]]
        elif ann is bool:
            options += ["true", "false"]
    if not options and isinstance(default, int | float | str) and not isinstance(default, bool):
        options.append(str(default))
    return list(dict.fromkeys(options))


def _lists_sections(annotation: object) -> bool:
    """True for a field holding a list of sections (model.layers, transfer.stages)."""
    import types
    import typing

    from dlrun.config.keys import unwrap_models

    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return any(typing.get_origin(a) is list and bool(unwrap_models(a))
               for a in (typing.get_args(annotation) if union else (annotation,)))


def _key_options(done: list[str], data: object) -> list[tuple[str, str]]:
    """(name, "section" | "value") for what may follow the dotted parts `done`."""
    from dlrun.config.keys import fields_at, get_dotted, unwrap_models
    from dlrun.config.layers import ITEM_CLASSES

    loc = tuple(int(p) if p.isdigit() else p for p in done)
    node = None
    if data is not None:
        try:
            node = get_dotted(data, ".".join(done)) if done else data
        except (KeyError, IndexError, TypeError, ValueError):
            node = None
    if done and not done[-1].isdigit():
        parent = fields_at(loc[:-1]).get(done[-1])
        if parent is not None and _lists_sections(parent.annotation):
            count = len(node) if isinstance(node, list) else 1  # list items: their indices
            return [(str(i), "section") for i in range(count)]
    fields = fields_at(loc)
    if isinstance(node, dict) and set(fields) <= set(ITEM_CLASSES):  # a layer item: the type it has
        fields = {k: v for k, v in fields.items() if k in node} or fields
    out = []
    for key, info in fields.items():
        if unwrap_models(info.annotation):
            out.append((key, "section"))
        if _takes_value(info.annotation):
            out.append((key, "value"))
    return out


def _takes_value(annotation: object) -> bool:
    """True when a field can be set to a plain value (not only a section or null)."""
    import types
    import typing

    from pydantic import BaseModel

    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    options = typing.get_args(annotation) if union else (annotation,)
    return any(a is not type(None) and not (isinstance(a, type) and issubclass(a, BaseModel)) for a in options)


def set_keys(incomplete: str, config: str | Path | None = None) -> list[str]:
    """`--set` candidates: dotted keys (`optim` -> optimizer.lr=, ...), then values (`optimizer.name=` ->
    optimizer.name=adam, ...). With `config`, list items are completed by the file's own indices."""
    from dlrun.config.keys import fields_at

    if "=" in incomplete:
        key, _, typed = incomplete.partition("=")
        *head, last = key.split(".")
        info = fields_at(tuple(int(p) if p.isdigit() else p for p in head)).get(last)
        if info is None:
            return []
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        choices = _value_choices(info.annotation, default)
        if choices and not _value_choices(info.annotation, None):  # only the default: a hint beside KEY=
            choices = ["", *choices]
        return [f"{key}={v}" for v in choices if v.startswith(typed)]
    *done, start = incomplete.split(".")
    head = "".join(f"{p}." for p in done)
    out = [head + name + ("." if kind == "section" else "=")
           for name, kind in _key_options(done, _config_data(config)) if name.startswith(start)]
    if len(out) == 1 and out[0] != incomplete:  # one way on: show what comes next (no shell adds a space)
        return set_keys(out[0], config) or out
    return out[:MAX_CANDIDATES]
