"""Reading versioned specs from YAML, migrating old versions, and readable errors.

The guide's FAQ tells of restore jobs that broke after an upgrade. Here a spec carries
`version`; an older spec is migrated step by step to the current model, never refused for
its age. A spec from a newer bingobackup is refused with a message saying so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from bingobackup.errors import BingoBackupError

M = TypeVar("M", bound=BaseModel)
Migration = Callable[[dict[str, Any]], dict[str, Any]]


class SpecError(BingoBackupError):
    """A job or restore spec that cannot be used; the message lists every problem."""


def describe_validation_error(exc: ValidationError, what: str) -> str:
    lines = [f"{what} is not valid:"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  - {where}: {message}")
    return "\n".join(lines)


def read_yaml(source: str | Path) -> dict[str, Any]:
    """A YAML mapping from a file path or from YAML text."""
    if isinstance(source, Path):
        try:
            text = source.read_text()
        except FileNotFoundError:
            raise SpecError(f"Spec file {source} does not exist.") from None
        label = str(source)
    else:
        text, label = source, "spec"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{label} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{label} must be a YAML mapping (key: value lines), not {type(data).__name__}.")
    return data


def load_versioned(
    data: Mapping[str, Any],
    model: type[M],
    current_version: int,
    migrations: Mapping[int, Migration],
    what: str,
) -> M:
    """Migrate `data` from its `version` to `current_version`, then validate it as `model`.

    `migrations[n]` turns a version-n mapping into a version-(n+1) mapping.
    """
    raw = dict(data)
    version = raw.get("version")
    if not isinstance(version, int) or version < 1:
        raise SpecError(
            f"{what} needs `version: <number>` (current version is {current_version}); got {version!r}."
        )
    if version > current_version:
        raise SpecError(
            f"{what} has version {version}, written by a newer bingobackup (this one reads up to "
            f"{current_version}). Upgrade bingobackup to use it."
        )
    while version < current_version:
        raw = migrations[version](raw)
        version += 1
        raw["version"] = version
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(describe_validation_error(exc, what)) from None


def load_spec(
    source: str | Path | Mapping[str, Any],
    model: type[M],
    current_version: int,
    migrations: Mapping[int, Migration],
    what: str,
) -> M:
    """A spec from a YAML file, YAML text or a mapping, migrated to the current version."""
    data = source if isinstance(source, Mapping) else read_yaml(source)
    label = f"{what} {source}" if isinstance(source, Path) else what
    return load_versioned(data, model, current_version, migrations, label)


_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def checked_job_name(value: str, what: str) -> str:
    """A job name usable as a Prefect deployment name, tag and temp-resource prefix."""
    if not _JOB_NAME.match(value):
        raise ValueError(
            f"{what} name {value!r} must start with a letter or digit and hold only letters, digits, "
            "'.', '_' and '-' (at most 63 characters)"
        )
    return value
