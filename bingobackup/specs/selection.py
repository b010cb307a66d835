"""What a backup job selects: the content entries (cluster, node or VM with its disks) and the
wildcard filters on VM names. Spec models only; resources/discovery.py resolves them against
the cloud."""

from __future__ import annotations

import fnmatch
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SelectionFilters(BaseModel):
    """Wildcard rules on VM names (`*`, `?`, `[abc]`), case-insensitive; excludes win.

    An empty `include` means every VM, so a job with only exclude rules works as expected.
    """

    model_config = ConfigDict(extra="forbid")

    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)

    def matches(self, vm_name: str) -> bool:
        name = vm_name.lower()
        if any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in self.exclude):
            return False
        return not self.include or any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in self.include)


DiskChoice = Literal["system", "all"] | list[str]


class ContentSelection(BaseModel):
    """One entry of a job's `content`: `{cluster: X}` | `{node: X}` | `{vm: NAME_OR_ID, disks: …}`.

    `disks` is `system` (system disk only), `all`, or a list of volume ids (VM entries only).
    """

    model_config = ConfigDict(extra="forbid")

    cluster: str | None = None
    node: str | None = None
    vm: str | None = None
    disks: DiskChoice = "all"

    @model_validator(mode="after")
    def _exactly_one_target(self) -> ContentSelection:
        given = [k for k in ("cluster", "node", "vm") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "each content entry selects exactly one of cluster, node or vm "
                f"(this one gives {', '.join(given) or 'none'})"
            )
        if isinstance(self.disks, list) and not self.vm:
            raise ValueError("a list of volume ids under 'disks' only applies to a 'vm' entry")
        if isinstance(self.disks, list) and not self.disks:
            raise ValueError("'disks' lists no volume id; use 'system' or 'all', or name the volumes")
        return self

    def describe(self) -> str:
        for kind in ("cluster", "node", "vm"):
            if value := getattr(self, kind):
                return f"{kind} '{value}'"
        return "empty entry"
