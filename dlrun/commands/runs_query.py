"""`dlrun runs --where/--sort/--columns`: filter and order runs on any metric or config key.

A key is a run field (name, status, kind, path, started, seconds, epochs), a metric (val_accuracy,
test_loss, best_val_accuracy, ...) or a dotted config key as dlrun.config.flat spells it
(optimizer.name, model.layers.dense_1.units). An expression is KEY OP VALUE with OP one of
= != < <= > >= ~ (~: VALUE is a substring); VALUE is read as YAML (0.9, adam, true, null).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from dlrun.config.safe_yaml import load_value
from dlrun.errors import QueryError

RUN_FIELDS = ("name", "kind", "status", "path", "started", "seconds", "epochs")
OPERATORS = ("<=", ">=", "!=", "=", "<", ">", "~")
_EXPRESSION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.\[\]-]*)\s*(<=|>=|!=|==|=|<|>|~)\s*(.*?)\s*$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\[\]-]*$")


@dataclass(frozen=True)
class Condition:
    """One --where expression."""

    key: str
    op: str
    value: Any
    text: str

    def matches(self, found: Any) -> bool:
        """Whether a run whose value for `key` is `found` passes (a run without the key never does)."""
        if found is _MISSING:
            return False
        if self.op == "~":
            return str(self.value).lower() in str(found).lower()
        if self.op in ("=", "!="):
            equal = _same(found, self.value)
            return equal if self.op == "=" else not equal
        a, b = _comparable(found), _comparable(self.value)
        if a is None or b is None or type(a) is not type(b):
            return False
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[self.op]


_MISSING = object()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _same(a: Any, b: Any) -> bool:
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return math.isclose(na, nb, rel_tol=1e-12, abs_tol=0.0)
    return a == b or (a is not None and b is not None and str(a) == str(b))


def _comparable(value: Any) -> float | str | None:
    number = _number(value)
    if number is not None:
        return number if not math.isnan(number) else None
    return str(value) if isinstance(value, str) else None


def parse_where(text: str) -> Condition:
    """A --where expression as a Condition.

    Raises:
        QueryError: naming the expression and what is wrong with it.
    """
    match = _EXPRESSION.match(text)
    if match is None:
        raise QueryError(f"--where {text!r}: expected KEY OP VALUE with OP one of {' '.join(OPERATORS)} "
                         "(e.g. 'val_accuracy>=0.9', optimizer.name=adam)")
    key, op, raw = match.groups()
    op = "=" if op == "==" else op
    if raw == "" or raw[0] in "<>=!~":
        raise QueryError(f"--where {text!r}: expected a value after {op!r}, got {raw or 'nothing'!r}")
    try:
        value = raw if op == "~" else load_value(raw)
    except yaml.YAMLError:
        value = raw
    if op in ("<", "<=", ">", ">=") and _comparable(value) is None:
        raise QueryError(f"--where {text!r}: {raw!r} is not a number or text to compare with {op!r}")
    return Condition(key, op, value, text)


def parse_sort(text: str) -> tuple[str, bool]:
    """(key, descending) of a --sort value: KEY ascending, -KEY descending.

    Raises:
        QueryError: the key is not a key.
    """
    key = text[1:] if text.startswith(("-", "+")) else text
    if not _KEY.match(key):
        raise QueryError(f"--sort {text!r}: expected a key, or -KEY for descending (e.g. -val_accuracy)")
    return key, text.startswith("-")


def parse_columns(text: str) -> list[str]:
    """The keys of --columns K1,K2,...

    Raises:
        QueryError: an empty or malformed key.
    """
    keys = [k.strip() for k in text.split(",")]
    for key in keys:
        if not _KEY.match(key):
            raise QueryError(f"--columns {text!r}: {key!r} is not a key (metric, run field or dotted config key)")
    return keys


def value_of(row: dict[str, Any], key: str) -> Any:
    """A run's value for `key`: a run field, a metric, else a config key; _MISSING when it has none."""
    if key in RUN_FIELDS:
        return row.get(key)
    if key in row["metrics"]:
        return row["metrics"][key]
    return row["config"].get(key.removeprefix("config."), _MISSING)


def check_keys(rows: list[dict[str, Any]], keys: list[str], what: dict[str, str]) -> None:
    """Refuse a key no run has (a typo would otherwise filter everything out, silently).

    Raises:
        QueryError: naming the key, the option it came from and keys that come close.
    """
    if not rows:
        return
    for key in keys:
        if key in RUN_FIELDS or any(value_of(row, key) is not _MISSING for row in rows):
            continue
        known = {k for row in rows for k in (*row["metrics"], *row["config"])}
        close = sorted(k for k in known if key.split(".")[-1] in k)[:5]
        hint = f"; close: {', '.join(close)}" if close else "; see `dlrun runs --json` for the keys runs have"
        raise QueryError(f"{what[key]}: no run has {key!r} (a metric, a run field or a dotted config key){hint}")


def sort_key(row: dict[str, Any], key: str, descending: bool) -> tuple[int, Any]:
    """Order by `key`: numbers before text, runs without the key last (either direction)."""
    value = _comparable(value_of(row, key))
    if value is None:
        return (2, 0)
    if isinstance(value, float):
        return (0, -value if descending else value)
    return (1, value)


def query(rows: list[dict[str, Any]], where: list[Condition], sort: tuple[str, bool] | None,
          limit: int | None) -> list[dict[str, Any]]:
    """The rows that pass every condition, sorted, at most `limit` of them."""
    kept = [row for row in rows if all(c.matches(value_of(row, c.key)) for c in where)]
    if sort is not None:
        key, descending = sort
        numbers = [r for r in kept if isinstance(sort_key(r, key, descending)[1], float)]
        texts = sorted((r for r in kept if sort_key(r, key, descending)[0] == 1),
                       key=lambda r: sort_key(r, key, descending)[1], reverse=descending)
        rest = [r for r in kept if sort_key(r, key, descending)[0] == 2]
        kept = sorted(numbers, key=lambda r: sort_key(r, key, descending)[1]) + texts + rest
    return kept[:limit] if limit is not None else kept


def cell(value: Any) -> Any:
    """A value as JSON/CSV shows it (_MISSING as None)."""
    return None if value is _MISSING else value
