"""Reading versioned specs from YAML or mappings, with readable errors.

The migration of older versions is part of the models (`bingobackup.specs.versioning`), so
every path that validates a spec migrates it; this module only reads files and words errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from bingobackup.errors import BingoBackupError
from bingobackup.specs.versioning import VersionedSpec

V = TypeVar("V", bound=VersionedSpec)


class SpecError(BingoBackupError):
    """A job or restore spec that cannot be used; the message lists every problem."""


def _printable(part: object) -> str:
    """A field name as typed, or quoted with escapes when it holds control characters (which
    would otherwise break the one-problem-per-line message, or hide in a terminal)."""
    text = str(part)
    return text if text.isprintable() else repr(text)


def describe_validation_error(exc: ValidationError, what: str) -> str:
    lines = [f"{what} is not valid:"]
    for error in exc.errors():
        where = ".".join(_printable(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  - {where}: {message}")
    return "\n".join(lines)


def read_yaml(source: str | Path) -> dict[str, Any]:
    """A YAML mapping from a file path or from YAML text."""
    if isinstance(source, Path):
        try:
            text = source.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpecError(f"Spec file {source} does not exist.") from None
        except UnicodeDecodeError as exc:
            line = source.read_bytes()[: exc.start].count(b"\n") + 1
            raise SpecError(
                f"Spec file {source} is not UTF-8 text (byte offset {exc.start}, line {line}): save it as UTF-8."
            ) from None
        except OSError as exc:  # a directory, no permission, an I/O error
            raise SpecError(f"Spec file {source} cannot be read: {exc.strerror or exc}.") from None
        label = str(source)
    else:
        text, label = source, "spec"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # A reader error (a control character) has no `problem` and a two-line text: one line.
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise SpecError(f"{label} is not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{label} must be a YAML mapping (key: value lines), not {type(data).__name__}.")
    return data


def load_versioned(data: Mapping[str, Any], model: type[V], what: str | None = None) -> V:
    """`data` validated as `model`, migrated from its `version` (which must be given) first.

    The migration itself is the model's (`VersionedSpec`); this adds what a file reader
    wants: an explicit `version`, and one `SpecError` listing every problem.
    """
    label = what or model.versioning.what
    problem = model.versioning.version_problem(data.get("version"), label)
    if problem:
        raise SpecError(problem)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecError(describe_validation_error(exc, label)) from None


def load_spec(source: str | Path | Mapping[str, Any], model: type[V]) -> V:
    """A spec from a YAML file, YAML text or a mapping, migrated to the current version."""
    data = source if isinstance(source, Mapping) else read_yaml(source)
    label = f"{model.versioning.what} {source}" if isinstance(source, Path) else None
    return load_versioned(data, model, label)


_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def checked_job_name(value: str, what: str) -> str:
    """A job name usable as a Prefect deployment name, tag and temp-resource prefix."""
    if not _JOB_NAME.match(value):
        raise ValueError(
            f"{what} name {value!r} must start with a letter or digit and hold only letters, digits, "
            "'.', '_' and '-' (at most 63 characters)"
        )
    return value
