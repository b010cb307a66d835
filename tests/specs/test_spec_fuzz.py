"""Generated job and restore specs: each is accepted and survives a round trip, or is refused
with a `SpecError` whose lines name the field — never a traceback.

A spec is written by hand, pasted from a runbook, or stored for months in a deployment; what
an operator types wrong is not what a test author thinks of. The generator starts from the
documented specs (tests/fixtures/specs) and damages them the ways people do: a field dropped,
a wrong type, a huge or negative number, unicode names, an old or future `version`, stray
keys; and it feeds raw text that is not a mapping at all. The examples are derandomized (the
same every run, as the cloud parser fuzz) so a failure reproduces.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from bingobackup.specs.job import load_job_spec
from bingobackup.specs.loading import SpecError
from bingobackup.specs.restore import load_restore_spec

FIXTURES = Path(__file__).parent.parent / "fixtures" / "specs"
FUZZ = settings(
    max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "60")),
    derandomize=not __import__("os").environ.get("FUZZ_EXAMPLES"),
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", "0", "-1", "1e400", "12:99", "50MiB/s", "9999999TiB/s", "名前-ä", "\u202e", "*"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a parsed YAML tree (mapping keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _mutate(tree: dict[str, Any], path: tuple[Any, ...], action: str, value: Any) -> None:
    parent: Any = tree
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "drop":
        del parent[last]
    elif action == "replace":
        parent[last] = value
    elif isinstance(parent, dict):  # "add": a stray key beside the field
        parent[f"{last}_extra"] = value
    else:
        parent.append(value)


@st.composite
def _damaged(draw: st.DrawFn, fixture: str) -> str:
    tree = yaml.safe_load((FIXTURES / fixture).read_text(encoding="utf-8"))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(tree)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["drop", "replace", "replace", "add"]))
        _mutate(tree, path, action, draw(_VALUES))
    if draw(st.booleans()):
        tree["version"] = draw(st.one_of(st.integers(min_value=-3, max_value=1000), _SCALARS))
    return yaml.safe_dump(tree, allow_unicode=True, sort_keys=False)


def _check(load: Callable[[str], BaseModel], text: str) -> None:
    try:
        spec = load(text)
    except SpecError as error:
        message = str(error)
        lines = message.splitlines()
        assert lines and lines[0].strip(), f"empty refusal for:\n{text}"
        assert "Traceback" not in message
        # The first line says what is wrong with the spec; every further line names a field.
        for line in lines[1:]:
            assert line.startswith("  - ") and ": " in line, f"a problem line names no field: {line!r}"
        return
    dumped = spec.model_dump(mode="json", by_alias=True)
    again = load(yaml.safe_dump(dumped, allow_unicode=True))
    assert again == spec, f"the accepted spec changed on a round trip:\n{text}"
    for number in _numbers(dumped):
        assert math.isfinite(number), f"an accepted spec holds {number}:\n{text}"


def _numbers(node: Any) -> list[float]:
    if isinstance(node, dict):
        return [n for value in node.values() for n in _numbers(value)]
    if isinstance(node, list):
        return [n for value in node for n in _numbers(value)]
    return [float(node)] if isinstance(node, int | float) and not isinstance(node, bool) else []


@FUZZ
@given(_damaged("job-v1.yaml"))
def test_damaged_job_specs_load_or_are_refused_naming_the_field(text: str) -> None:
    _check(load_job_spec, text)


@FUZZ
@given(_damaged("restore-v1.yaml"))
def test_damaged_restore_specs_load_or_are_refused_naming_the_field(text: str) -> None:
    _check(load_restore_spec, text)


@FUZZ
@given(st.one_of(st.text(max_size=200), _VALUES.map(lambda v: yaml.safe_dump(v, allow_unicode=True))))
def test_text_that_is_no_spec_is_refused_in_one_line(text: str) -> None:
    for load in (load_job_spec, load_restore_spec):
        _check(load, text)
