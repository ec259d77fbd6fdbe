"""Which tests share a worker under `pytest -n N` (pyproject.toml sets --dist loadgroup): imported by
tests/conftest.py, which makes `pytest_collection_modifyitems` here one of its hooks.

- The tests of a module that share a module- or class-scoped fixture (a training, a sweep, the docs run, a
  server) get one xdist_group, so the fixture is built once instead of once per worker that happens to get
  one of its tests. Tests connected through any such fixture (also one that a fixture uses) form one group;
  a test that shares none stays on its own, free to go to either worker. A test that names its own
  xdist_group keeps it.
- Every group is put into the test's id as `ID@GROUP`, which is how xdist's loadgroup scheduler finds it.
  xdist 3.8 writes that suffix into `item._nodeid`, which pytest 9.2 no longer reads (ids are structured
  now): the groups were silently ignored and their tests dealt out one by one
  (https://github.com/pytest-dev/pytest-xdist/issues/1386). Where pytest keeps a structured id, the suffix
  is written here instead; on older pytest, xdist's own hook still does it.
"""

from __future__ import annotations

import pytest

SHARED_SCOPES = ("module", "class", "package")


def _shared_fixtures(item: pytest.Item) -> list[str]:
    """The module-, class- or package-scoped fixtures the test uses, directly or through other fixtures."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return sorted(name for name, defs in info.name2fixturedefs.items() if defs and defs[-1].scope in SHARED_SCOPES)


def group_shared_fixtures(items: list[pytest.Item]) -> None:
    """Mark each test that shares a fixture with others of its module with that group's xdist_group."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    grouped = []
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        module = item.path.stem  # unique: pytest's default import mode requires it
        keys = [f"{module}.{name}" for name in _shared_fixtures(item)]
        if not keys:
            continue
        for key in keys[1:]:
            parent[root(key)] = root(keys[0])
        grouped.append((item, keys[0]))
    for item, key in grouped:
        item.add_marker(pytest.mark.xdist_group(root(key)))


def _group_names(item: pytest.Item) -> str:
    """The test's xdist groups as xdist's loadgroup scheduler names them ('' for none)."""
    names = {str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
             for mark in item.iter_markers("xdist_group")}
    return "_".join(sorted(names))


def suffix_group_ids(items: list[pytest.Item]) -> None:
    """`ID@GROUP` for every grouped test whose id is pytest's structured NodeId (pytest >= 9.2)."""
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # pytest < 9.2: ids are strings, and xdist suffixes them itself
        return
    for item in items:
        group = _group_names(item)
        if group and isinstance(getattr(item, "_id", None), NodeId):
            item._id = NodeId.parse(f"{item.nodeid}@{group}")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which would otherwise see no groups of ours
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group the tests that share a fixture; on an xdist worker under --dist loadgroup, put the groups in the ids."""
    group_shared_fixtures(items)
    if getattr(config.option, "loadgroup", False):
        suffix_group_ids(items)
