"""Hypothesis strategies built from the config's JSON Schema (dlrun.config.editor_schema), so every
section, layer type, schedule, sweep setting and transfer stage is generated from the one contract and
a new field is covered the day it is added. Only the keywords that schema uses are understood; any
other keyword fails loudly rather than being ignored (a constraint skipped would make invalid data)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from dlrun.config.editor_schema import json_schema

Strategy = st.SearchStrategy[Any]
# keywords that only describe (or that the generator honours where it reads them)
DESCRIPTIVE = {"title", "description", "default", "$schema"}
UNDERSTOOD = DESCRIPTIVE | {
    "$ref", "$defs", "anyOf", "oneOf", "enum", "const", "type", "properties", "required", "additionalProperties",
    "items", "prefixItems", "minItems", "maxItems", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "pattern", "maxLength", "minLength", "discriminator",
}
# free-form strings: a few realistic ones (keys, metrics, paths) and some arbitrary text
WORDS = ["val_loss", "val_accuracy", "loss", "accuracy", "optimizer.lr", "model.l2", "train.batch_size",
         "x", "data/file.npz", "dense*", "a b", "yes", "null", "1.5", "#", "é", "00"]
# any text a config may hold (safe_yaml.bad_text refuses control characters and lone surrogates): YAML's
# special characters, quotes, line breaks and non-ASCII included
TEXT = st.text(st.characters(exclude_categories=("Cc", "Cs"), include_characters="\t\n"), max_size=12)
ANY_SCALAR = (st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(-1e6, 1e6, allow_nan=False)
              | st.sampled_from(WORDS))


ABSENT = object()


class SchemaStrategies:
    """Strategies for the `$defs` of one JSON Schema; `seen` collects every `$def` a drawn value used."""

    def __init__(self, schema: dict[str, Any], overrides: dict[str, Callable[[Strategy], Strategy]] | None = None,
                 ) -> None:
        self.schema = schema
        self.defs: dict[str, Any] = schema.get("$defs", {})
        # "Def.property" (or "Def.property.*key": a mapping's keys) -> a function of the generic strategy that
        # returns the one to use there, e.g. to make realistic values more likely
        self.overrides = overrides or {}
        self.seen: set[str] = set()
        self._refs: dict[str, Strategy] = {}

    def root(self) -> Strategy:
        """Values of the whole schema."""
        return self.node(self.schema, "root")

    def ref(self, name: str) -> Strategy:
        """Values of `#/$defs/NAME`, recording the name in `seen` when one is drawn."""
        if name not in self._refs:
            self._refs[name] = st.deferred(lambda: self.node(self.defs[name], name).map(self._mark(name)))
        return self._refs[name]

    def _mark(self, name: str) -> Callable[[Any], Any]:
        def mark(value: Any) -> Any:
            self.seen.add(name)
            return value
        return mark

    def node(self, node: dict[str, Any], where: str) -> Strategy:
        """Values of one schema node (`where` names it in errors and overrides); a field's default is
        drawn often, since many rules only apply while another field keeps its default (decay: 0), but
        an optional section (default null) as often as not."""
        values = self._values(node, where)
        return st.just(node["default"]) | values if node.get("default") is not None else values

    def _values(self, node: dict[str, Any], where: str) -> Strategy:  # noqa: C901 - one branch per keyword
        unknown = set(node) - UNDERSTOOD
        assert not unknown, f"{where}: schema keywords the generator does not understand: {sorted(unknown)}"
        if "$ref" in node:
            return self.ref(node["$ref"].rsplit("/", 1)[-1])
        for key in ("anyOf", "oneOf"):
            if key in node:
                return st.one_of([self.node(option, where) for option in node[key]])
        if "const" in node:
            return st.just(node["const"])
        if "enum" in node:
            return st.sampled_from(node["enum"])
        kind = node.get("type")
        if kind == "object":
            return self._object(node, where)
        if kind == "array":
            return self._array(node, where)
        if kind == "string":
            return self._string(node)
        if kind == "integer":
            return self._integer(node)
        if kind == "number":
            return self._number(node)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        assert kind is None and not set(node) - DESCRIPTIVE, f"{where}: cannot generate {node}"
        return ANY_SCALAR  # `{}`: any value

    def _object(self, node: dict[str, Any], where: str) -> Strategy:
        props = node.get("properties", {})
        required = set(node.get("required", []))
        fields = {key: self._override(f"{where}.{key}", self.node(sub, f"{where}.{key}"))
                  for key, sub in props.items()}
        # an optional key is left out half the time (fixed_dictionaries' `optional` leaves out most of them)
        fixed = st.fixed_dictionaries({k: s if k in required else st.just(ABSENT) | s for k, s in fields.items()}).map(
            lambda mapping: {k: v for k, v in mapping.items() if v is not ABSENT})
        extra = node.get("additionalProperties", False)
        if extra is False or props:
            return fixed
        keys = self._override(f"{where}.*key", st.sampled_from(WORDS))
        return st.dictionaries(keys, self.node(extra, f"{where}.*"), max_size=3)

    def _override(self, where: str, generic: Strategy) -> Strategy:
        return self.overrides[where](generic) if where in self.overrides else generic

    def _array(self, node: dict[str, Any], where: str) -> Strategy:
        low, high = node.get("minItems", 0), node.get("maxItems")
        if "prefixItems" in node:
            assert low == high == len(node["prefixItems"]), f"{where}: only fixed-length tuples"
            return st.tuples(*(self.node(n, where) for n in node["prefixItems"])).map(list)
        items = self.node(node.get("items", {}), f"{where}[]")
        return st.lists(items, min_size=low, max_size=min(high if high is not None else low + 3, low + 3))

    @staticmethod
    def _string(node: dict[str, Any]) -> Strategy:
        low, high = node.get("minLength", 0), node.get("maxLength", 40)
        text = st.from_regex(node["pattern"], fullmatch=True) if "pattern" in node else (
            st.sampled_from(WORDS) | TEXT)
        return text.filter(lambda s: low <= len(s) <= high)

    @staticmethod
    def _integer(node: dict[str, Any]) -> Strategy:
        low = node.get("minimum", node["exclusiveMinimum"] + 1 if "exclusiveMinimum" in node else -5)
        high = node.get("maximum", node["exclusiveMaximum"] - 1 if "exclusiveMaximum" in node else 10**4)
        return st.integers(low, high) | st.integers(low, min(low + 3, high))

    @staticmethod
    def _number(node: dict[str, Any]) -> Strategy:
        low = node.get("minimum", node.get("exclusiveMinimum", -1e6))
        high = node.get("maximum", node.get("exclusiveMaximum", 1e6))
        floats = st.floats(low, high, exclude_min="exclusiveMinimum" in node, exclude_max="exclusiveMaximum" in node,
                           allow_nan=False, allow_infinity=False)
        ints = st.integers(math.ceil(low), math.floor(high)).filter(
            lambda n: ("exclusiveMinimum" not in node or n > low) and ("exclusiveMaximum" not in node or n < high))
        return floats | ints  # finite: JSON has no infinity, and dlrun refuses .nan and .inf in every setting


def config_strategies(overrides: dict[str, Strategy] | None = None) -> SchemaStrategies:
    """Strategies for whole dlrun configs, from the config's JSON Schema."""
    return SchemaStrategies(json_schema(), overrides)
