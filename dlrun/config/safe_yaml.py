"""YAML that cannot exhaust the machine: PyYAML's safe loader, bounded while it composes.

An alias costs nothing to parse but everything after it (validation, hashing, dumping) sees the
expanded value, so a few lines of anchors can stand for a billion values ("billion laughs"). The
loader counts every node as if aliases were expanded, and the nesting depth, while it composes the
document, and stops at MAX_YAML_NODES / MAX_YAML_DEPTH (dlrun.limits) before anything is built.
Strings that are not text (lone surrogates, from `\\ud800` escapes or non-UTF-8 bytes in argv) and
control characters are refused too: they cannot be written back as a UTF-8 config.yaml.

Numbers with an exponent and no dot (`1e-3`, `5E4`) are numbers, as in YAML 1.2 and the editors that
check a config against dlrun.schema.json (YAML 1.1 reads them as text); `dump` quotes text that would
read back as such a number, so a dumped config loads again unchanged.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import yaml

from dlrun.limits import MAX_YAML_DEPTH, MAX_YAML_NODES


class YamlBomb(yaml.MarkedYAMLError):
    """The document expands past MAX_YAML_NODES or nests past MAX_YAML_DEPTH."""


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader (plain YAML, no `!!python` tags) that refuses documents which expand or nest too far."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> its size with aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        """Compose one node, counting its expanded size (an alias counts as what it stands for)."""
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlBomb(None, None, f"nested more than {MAX_YAML_DEPTH} levels deep; a config needs a "
                               "handful of levels", mark)
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                target = self.anchors.get(event.anchor)
                if target is not None and id(target) not in self._sizes:
                    raise YamlBomb(None, None, f"the alias *{event.anchor} refers to a value that contains it; "
                                   "a config cannot be recursive", event.start_mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if id(node) not in self._sizes:
            children = node.value if isinstance(node, yaml.SequenceNode) else (
                [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else [])
            size = 1 + sum(self._sizes.get(id(child), 1) for child in children)
            self._sizes[id(node)] = size
            if size > MAX_YAML_NODES:
                raise YamlBomb(None, None, f"expands to more than {MAX_YAML_NODES:,} values once its aliases are "
                               "expanded (an alias bomb?); write the values out, or use a csv file for big tables",
                               node.start_mark)
        return node


FLOAT_TAG = "tag:yaml.org,2002:float"
# YAML 1.2's floats that YAML 1.1 (PyYAML) reads as text: an exponent, with no dot or no exponent sign.
EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")
BoundedLoader.add_implicit_resolver(FLOAT_TAG, EXPONENT_FLOAT, list("-+0123456789."))


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes text which BoundedLoader would read as a number."""


_Dumper.add_implicit_resolver(FLOAT_TAG, EXPONENT_FLOAT, list("-+0123456789."))


def dump(data: Any) -> str:
    """YAML text of plain data (keys in their order, lists in flow style) that compose_and_load reads back equal."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=None)


def compose_and_load(text: str) -> tuple[yaml.Node | None, Any]:
    """(node tree, data) of one YAML document, bounded as BoundedLoader says. Raises yaml.YAMLError."""
    loader = BoundedLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return node, data


def load_value(text: str) -> Any:
    """One YAML value (a `--set` or sweep flag value), bounded the same way. Raises yaml.YAMLError."""
    return compose_and_load(text)[1]


def bad_text(value: str) -> str | None:
    """Why a string cannot stand in a config (not UTF-8 text, or a control character), or None."""
    for i, char in enumerate(value):
        category = unicodedata.category(char)
        if category == "Cs":
            return (f"is not UTF-8 text (an undecodable byte or a lone surrogate at character {i + 1}); "
                    "write it as plain UTF-8")
        if category == "Cc" and char not in "\t\n\r":
            return f"holds the control character {char!r} at character {i + 1}; remove it"
    return None


def bad_strings(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, reason) for every key or string value under `data` that is not clean text."""
    found: list[tuple[str, str]] = []
    items = (list(data.items()) if isinstance(data, dict)
             else list(enumerate(data)) if isinstance(data, list) else [])
    for key, value in items:
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(key, str) and (reason := bad_text(key)):
            found.append((prefix, f"the key {key!r} {reason}"))
        elif isinstance(value, str) and (reason := bad_text(value)):
            found.append((dotted, f"the value {reason}"))
        elif isinstance(value, bytes):
            found.append((dotted, "the value is binary data (!!binary); write it as text"))
        else:
            found.extend(bad_strings(value, dotted))
    return found
