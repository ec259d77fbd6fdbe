"""Config loading: YAML (safe loader only) -> `--set` overrides -> pydantic -> cross-field checks.

Every problem is reported at once as `FILE:LINE: dotted.key: message`; overrides report as
`--set KEY=VALUE: dotted.key: message`.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dlrun.config import checks
from dlrun.config.keras_names import key_hint, value_hint
from dlrun.config.keys import known_keys, set_dotted
from dlrun.config.layers import ITEM_CLASSES
from dlrun.config.safe_yaml import YamlRefused, bad_strings, compose_and_load, dump, load_value
from dlrun.config.schema import ExperimentConfig
from dlrun.config.sourcemap import LoadedConfig, SourceMap
from dlrun.errors import ConfigError, Problem
from dlrun.limits import MAX_CONFIG_BYTES, file_kind, format_bytes


def _line_map(node: yaml.Node, prefix: str, out: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            out[key] = key_node.start_mark.line + 1
            _line_map(value_node, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = f"{prefix}.{index}" if prefix else str(index)
            out[key] = item.start_mark.line + 1
            _line_map(item, key, out)


def parse_yaml(text: str, file: str) -> tuple[Any, dict[str, int]]:
    """Parse YAML with the safe loader, bounded (safe_yaml.BoundedLoader: no alias bombs, no deep
    nesting); returns (data, dotted key -> line). Raises ConfigError."""
    try:
        node, data = compose_and_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        reason = exc.problem or str(exc)
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in reason:
            reason += "; dlrun reads plain YAML only (no !!python tags), write the value itself"
        raise ConfigError([Problem(f"{file}{line}", "", f"invalid YAML: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file, "", f"invalid YAML: {exc}")]) from None
    lines: dict[str, int] = {}
    if node is not None:
        _line_map(node, "", lines)
    return data, lines


def read_config_file(path: str | Path) -> tuple[dict[str, Any], SourceMap]:
    """Read a YAML config file into a mapping and its SourceMap. Raises ConfigError."""
    path = Path(path)
    file = str(path)
    text = _read_text(path, file)
    data, lines = parse_yaml(text, file)
    if data is None:
        raise ConfigError([Problem(file, "", "the config is empty; expected a mapping with at least `model:`")])
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ConfigError([Problem(f"{file}:1", "", f"expected a mapping of sections at the top, got a {kind}")])
    return data, SourceMap(file=file, lines=lines)


def _read_text(path: Path, file: str) -> str:
    """The text of a config file: a regular file (a FIFO is never opened), at most MAX_CONFIG_BYTES,
    UTF-8. Raises ConfigError naming what is wrong."""
    try:
        st = path.stat()
    except OSError as exc:
        hint = "no such file" if isinstance(exc, FileNotFoundError) else (exc.strerror or str(exc))
        raise ConfigError([Problem(file, "", f"cannot read config: {hint}; give the path of a .yaml file")]) from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError([Problem(file, "", f"cannot read config: it is {file_kind(st.st_mode)}, not a file; "
                                   "give the path of a .yaml file")])
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError([Problem(file, "", f"cannot read config: {format_bytes(st.st_size)} is far too big for a "
                                   f"config (at most {format_bytes(MAX_CONFIG_BYTES)}); put big tables in a csv "
                                   "file (data.source: csv)")])
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([Problem(file, "", f"cannot read config: {exc.strerror or exc}")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError([Problem(f"{file}:{line}", "", f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the "
                                   "config as UTF-8")]) from None


def check_text(data: dict[str, Any], source: SourceMap) -> None:
    """Refuse keys and values that are not clean UTF-8 text (safe_yaml.bad_strings), located."""
    problems = [source.problem(key, reason) for key, reason in bad_strings(data)]
    if problems:
        raise ConfigError(problems)


def apply_overrides(data: dict[str, Any], overrides: list[str], source: SourceMap) -> dict[str, Any]:
    """Apply `KEY=VALUE` overrides (dotted keys, YAML-typed values) to a copy of `data`."""
    data = copy.deepcopy(data)
    problems: list[Problem] = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(Problem(f"--set {item}", "", "expected KEY=VALUE, e.g. --set optimizer.lr=0.1"))
            continue
        try:
            value = load_value(raw) if raw.strip() else None
        except YamlRefused as exc:
            shown = item if len(item) <= 60 else f"{item[:57]}..."
            problems.append(Problem(f"--set {shown}", key, f"the value {exc.problem}"))
            continue
        except yaml.YAMLError:
            value = raw
        try:
            set_dotted(data, key, value)
        except (KeyError, IndexError, TypeError) as exc:
            problems.append(Problem(f"--set {item}", key, str(exc.args[0]) if exc.args else str(exc)))
            continue
        source.overrides[key] = item
    if problems:
        raise ConfigError(problems)
    return data


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


_WRAPPED = re.compile(r"^function-\w+\[\w+\(\), (.+)\]$")


def _dotted(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        text = _WRAPPED.sub(r"\1", str(part))  # a union member's label: `constrained-int`, not its wrapper
        if parts and parts[-1] == text and text in ITEM_CLASSES:
            continue  # the tagged union repeats the layer type in the location
        parts.append(text)
    return ".".join(parts)


def _message(err: dict[str, Any]) -> str:
    loc, kind, value = err["loc"], err["type"], err.get("input")
    if kind == "extra_forbidden":
        parent = loc[:-1]
        options = known_keys(parent)
        allowed = f"; allowed: {', '.join(options)}" if options else ""
        keras = key_hint(str(loc[-1]), options)
        hint = keras or _did_you_mean(str(loc[-1]), options) or allowed
        return f"unknown key '{loc[-1]}'{hint}"
    if kind == "unknown_layer":
        names = sorted(ITEM_CLASSES)
        if isinstance(value, dict) and len(value) == 1:
            got = next(iter(value))
            return f"unknown layer type '{got}'{_did_you_mean(str(got), names)} (known: {', '.join(names)})"
        return f"expected a one-key mapping such as `dense: {{units: 10}}`, got {value!r}"
    if kind == "missing":
        return "required key is missing"
    if kind == "string_pattern_mismatch" and tuple(loc) == ("name",):
        return (f"{value!r} is not a valid name: use letters, digits, '_', '-', '.', starting with a letter "
                "or digit (it becomes a folder name, so no '/' or '..')")
    got = "" if isinstance(value, dict | list) else f" (got {value!r})"
    return f"{err['msg']}{got}{value_hint(str(loc[-1]), value) if loc else ''}"


def _untagged(err: Any) -> Any:
    """The error without the tag pydantic puts in a sweep value's location (`list` or `range`)."""
    loc = tuple(err["loc"])
    if len(loc) >= 4 and loc[:2] == ("sweep", "params") and loc[3] in ("list", "range"):
        err = {**err, "loc": loc[:3] + loc[4:]}
    return err


def validate_data(data: dict[str, Any], source: SourceMap) -> ExperimentConfig:
    """Validate a config mapping; every problem becomes one located line in a ConfigError."""
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        errors = [_untagged(err) for err in exc.errors()]
        problems = [source.problem(_dotted(err["loc"]), _message(err)) for err in errors]
        raise ConfigError(problems) from None
    return config


def load_config(path: str | Path, overrides: list[str] | None = None) -> LoadedConfig:
    """Load a config file, apply `--set` overrides, validate it and run the static checks.

    Args:
        path: The YAML file.
        overrides: `KEY=VALUE` strings (dotted keys, YAML-typed values), applied after the file.

    Returns:
        The validated config with the map from each key to its file line or override.

    Raises:
        ConfigError: listing every problem found, each as `FILE:LINE: key: message`.
    """
    data, source = read_config_file(path)
    data = apply_overrides(data, list(overrides or []), source)
    check_text(data, source)
    loaded = LoadedConfig(validate_data(data, source), source, Path(path))
    checks.run_static_checks(loaded)
    return loaded


def config_sha256(config: ExperimentConfig) -> str:
    """A stable hash of the resolved config."""
    text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def dump_config(config: ExperimentConfig) -> str:
    """The resolved config as YAML text, loadable again by `load_config`."""
    return dump(config.to_dict())


def ensure_loaded(config: str | Path | LoadedConfig, overrides: list[str] | None = None) -> LoadedConfig:
    """A LoadedConfig from a path (with overrides), or the given one as it is."""
    if isinstance(config, LoadedConfig):
        if overrides:
            raise ValueError("overrides apply to a config path, not to a LoadedConfig")
        return config
    return load_config(config, overrides)
