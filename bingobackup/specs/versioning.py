"""Versioned specs that migrate themselves on every validation.

The guide's FAQ tells of restore jobs that broke after an upgrade. A job's spec is stored
long before it runs (as a Prefect deployment's parameters, in a YAML file, in a runbook),
and Prefect validates a run's stored parameters straight into the flow's typed `spec`
parameter. So the migration lives in the model itself: whichever path validates a mapping
(Prefect, the CLI, YAML, `job show`), an older version is migrated step by step to the
current one first, and a version from a newer bingobackup is refused saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

Migration = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class SpecVersioning:
    """A spec kind's current version and the migrations that lead to it.

    `migrations[n]` turns a version-n mapping into a version-(n+1) mapping; every version
    from 1 up to `current` - 1 needs one, checked when the spec class is defined.
    """

    current: int
    migrations: Mapping[int, Migration] = field(default_factory=dict)
    what: str = "Spec"  # how messages name this kind of spec: "Restore spec"

    def __post_init__(self) -> None:
        missing = [n for n in range(1, self.current) if n not in self.migrations]
        if self.current < 1 or missing:
            # A developer error: a bumped version without its migration would strand stored specs.
            raise ValueError(
                f"{self.what} version {self.current} needs a migration from every older version; "
                f"missing: {missing}"
            )
        # A copy the rest of the program cannot change behind the check above.
        object.__setattr__(self, "migrations", MappingProxyType(dict(self.migrations)))

    def version_problem(self, version: object, what: str | None = None) -> str | None:
        """Why `version` cannot be read by this bingobackup, or None when it can."""
        label = what or self.what
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            return (
                f"{label} needs `version: <number>` (the current version is {self.current}); got {version!r}."
            )
        if version > self.current:
            return (
                f"{label} has version {version}, written by a newer bingobackup (this one reads up "
                f"to {self.current}). Upgrade bingobackup to use it."
            )
        return None

    def migrate(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """`data` (any older version) as a current-version mapping; `data` itself is not changed.

        A mapping without `version` is taken as current: that is how Python code builds a spec.
        """
        raw = dict(data)
        version = raw.setdefault("version", self.current)
        problem = self.version_problem(version)
        if problem:
            raise ValueError(problem)
        while version < self.current:
            raw = dict(self.migrations[version](raw))
            version += 1
            raw["version"] = version
        return raw


def version_field(current: int) -> Any:
    """The `version` field of a spec whose current version is `current`.

    A plain integer rather than a constant: stored older versions must get as far as the
    migration, and the Prefect UI form offers the current version as its default.
    """
    return Field(
        default=current,
        ge=1,
        description="schema version of this spec; older versions are migrated when read",
    )


class VersionedSpec(BaseModel):
    """A spec with a `version`, migrated to the current version whenever it is validated.

    A subclass sets `versioning` and declares `version: int = version_field(N)`. Shorthands
    of the *current* version belong in `_current_form`, which sees the migrated mapping (a
    subclass's own `mode="before"` validator would run before the migration).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    versioning: ClassVar[SpecVersioning]
    version: int

    @model_validator(mode="before")
    @classmethod
    def _migrate_to_current_version(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return cls._current_form(cls.versioning.migrate(data))
        return data

    @classmethod
    def _current_form(cls, data: dict[str, Any]) -> dict[str, Any]:
        return data
