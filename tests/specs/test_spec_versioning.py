"""The migration chain of versioned specs, on a toy spec with three versions: every older
version is migrated step by step whichever way it is validated, a newer one is refused with
advice, and a version bump without its migration cannot even be defined."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ValidationError

from bingobackup.specs.job import BackupJobSpec, load_job_spec
from bingobackup.specs.loading import SpecError, load_spec, load_versioned
from bingobackup.specs.restore import RestoreSpec, load_restore_spec
from bingobackup.specs.versioning import SpecVersioning, VersionedSpec, version_field

FIXTURES = Path(__file__).parents[1] / "fixtures" / "specs"


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v2 renamed `host` to `backup_host`."""
    data["backup_host"] = data.pop("host")
    return data


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    """v3 turned the single `vm` into a `vms` list."""
    data["vms"] = [data.pop("vm")]
    return data


class ToySpec(VersionedSpec):
    versioning: ClassVar[SpecVersioning] = SpecVersioning(3, {1: _v1_to_v2, 2: _v2_to_v3}, "Toy spec")

    version: int = version_field(3)
    backup_host: str
    vms: list[str]


class Holder(BaseModel):
    """A spec nested in another model, as a flow's parameters hold it."""

    spec: ToySpec


V3 = ToySpec(version=3, backup_host="i-1", vms=["web"])


@pytest.mark.parametrize(
    "stored",
    [
        {"version": 1, "host": "i-1", "vm": "web"},
        {"version": 2, "backup_host": "i-1", "vm": "web"},
        {"version": 3, "backup_host": "i-1", "vms": ["web"]},
    ],
    ids=["v1", "v2", "v3"],
)
def test_every_older_version_is_migrated_on_every_validation_path(stored: dict[str, Any]) -> None:
    kept = dict(stored)
    assert ToySpec.model_validate(stored) == V3
    assert Holder.model_validate({"spec": stored}).spec == V3
    assert ToySpec.model_validate_json(Holder(spec=ToySpec(**stored)).spec.model_dump_json()) == V3
    assert load_versioned(stored, ToySpec) == V3
    assert stored == kept, "validating must not rewrite the caller's stored spec"


def test_a_version_newer_than_this_release_is_refused_with_advice() -> None:
    stored = {"version": 4, "backup_host": "i-1", "vms": ["web"]}
    with pytest.raises(ValidationError, match="has version 4, written by a newer bingobackup"):
        ToySpec.model_validate(stored)
    with pytest.raises(SpecError, match=r"reads up to 3\)\. Upgrade bingobackup"):
        load_versioned(stored, ToySpec)


@pytest.mark.parametrize("version", [0, "1", True, None])
def test_a_version_that_is_not_a_number_is_refused(version: object) -> None:
    stored = {"version": version, "backup_host": "i-1", "vms": ["web"]}
    with pytest.raises(ValidationError, match=r"needs `version: <number>` \(the current version is 3\)"):
        ToySpec.model_validate(stored)


def test_python_code_may_leave_version_out_but_a_stored_spec_may_not() -> None:
    assert ToySpec(backup_host="i-1", vms=["web"]).version == 3
    with pytest.raises(SpecError, match="Toy spec needs `version: <number>`"):
        load_versioned({"backup_host": "i-1", "vms": ["web"]}, ToySpec)


def test_a_version_bump_without_its_migration_cannot_be_defined() -> None:
    with pytest.raises(ValueError, match=r"missing: \[2\]"):
        SpecVersioning(3, {1: _v1_to_v2}, "Toy spec")


def test_migrations_stay_as_checked_when_the_source_dict_changes_later() -> None:
    migrations = {1: _v1_to_v2, 2: _v2_to_v3}
    versioning = SpecVersioning(3, migrations, "Toy spec")
    migrations.clear()
    assert versioning.migrate({"version": 1, "host": "i-1", "vm": "web"})["vms"] == ["web"]


@pytest.mark.parametrize(
    ("name", "model", "loader"),
    [
        ("job-v1.yaml", BackupJobSpec, load_job_spec),
        ("restore-v1.yaml", RestoreSpec, load_restore_spec),
    ],
)
def test_stored_old_spec_fixtures_load_through_the_loader_and_the_bare_model(
    name: str, model: type[VersionedSpec], loader: Any
) -> None:
    path = FIXTURES / name
    spec = loader(path)
    assert spec == load_spec(path, model)
    # The bare model is what Prefect validates a deployment's stored parameters into.
    assert model.model_validate(spec.model_dump(mode="json", by_alias=True)) == spec
    assert spec.version == model.versioning.current
