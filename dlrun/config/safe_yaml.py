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

The loader is strict where YAML 1.1 surprises: a key given twice (PyYAML keeps the last one silently)
is an error naming both lines, and numbers that YAML 1.1 reads in base 60 (`1:30` is 90) or base 8
(`0777` is 511) are refused with the value they would have become.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import yaml

from dlrun.limits import MAX_YAML_DEPTH, MAX_YAML_NODES


class YamlRefused(yaml.MarkedYAMLError):
    """YAML that parses but that dlrun refuses; `problem` says why and how to write it instead."""


class YamlBomb(YamlRefused):
    """The document expands past MAX_YAML_NODES or nests past MAX_YAML_DEPTH."""


class YamlSurprise(YamlRefused):
    """A key given twice, or a number YAML 1.1 reads in base 60 or base 8."""


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
            if isinstance(node, yaml.MappingNode):
                _refuse_duplicate_keys(node)
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
def _refuse_duplicate_keys(node: yaml.MappingNode) -> None:
    """Raise YamlSurprise at the second of two equal scalar keys of one mapping (merge keys `<<` aside)."""
    seen: dict[tuple[str, str], yaml.Node] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        first = seen.setdefault((key_node.tag, key_node.value), key_node)
        if first is not key_node:
            raise YamlSurprise(None, None, f"the key {key_node.value!r} is given twice (lines "
                               f"{first.start_mark.line + 1} and {key_node.start_mark.line + 1}); YAML would keep "
                               "the last one silently: keep one", key_node.start_mark)


def _yaml11_number(loader: BoundedLoader, node: yaml.ScalarNode, kind: str) -> Any:
    """An int or float scalar, refusing YAML 1.1's base-60 (`1:30`) and base-8 (`0777`) readings."""
    text = node.value.replace("_", "").lstrip("+-")
    base = ("a base-60" if ":" in text else
            "an octal (base-8)" if kind == "int" and len(text) > 1 and text[0] == "0" and text[1] not in "xXbB"
            else None)
    construct = yaml.SafeLoader.construct_yaml_int if kind == "int" else yaml.SafeLoader.construct_yaml_float
    value = construct(loader, node)
    if base is not None:
        raise YamlSurprise(None, None, f"{node.value} is {base} number in YAML 1.1 ({value}); write {value} if "
                           f"you mean that number, or quote it ('{node.value}') if you mean text", node.start_mark)
    return value


BoundedLoader.add_constructor("tag:yaml.org,2002:int", lambda loader, node: _yaml11_number(loader, node, "int"))
BoundedLoader.add_constructor("tag:yaml.org,2002:float", lambda loader, node: _yaml11_number(loader, node, "float"))


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
