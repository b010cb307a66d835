"""A job stored before an upgrade keeps running after it (guide FAQ 8.1).

A deployment's run validates its *stored* parameters straight into the flow's typed `spec`
(Prefect's `Flow.validate_parameters`, which the flow engine calls before the run starts),
without our loaders. Here the next release is simulated (one field renamed, one migration
more) and a spec as today's release stores it is validated the
way a run validates it: it must arrive migrated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.exceptions import ParameterTypeError

from bingobackup.specs.job import BackupJobSpec
from bingobackup.specs.restore import RestoreSpec
from bingobackup.specs.versioning import SpecVersioning, VersionedSpec
from deployments.kinds import load_any_spec
from flows.backup import backup
from flows.restore import restore_vm

FIXTURES = Path(__file__).parents[1] / "fixtures" / "specs"

# (flow, model, stored v1 fixture, the field's name in the simulated v1, its name in v2 = today)
CASES = [
    pytest.param(backup, BackupJobSpec, "job-v1.yaml", "host", "backup_host", id="backup"),
    pytest.param(restore_vm, RestoreSpec, "restore-v1.yaml", "start_after_restore", "power_on", id="restore"),
]


def _stored_json(spec: VersionedSpec) -> dict[str, Any]:
    """A spec as a deployment stores it: JSON parameters."""
    return spec.model_dump(mode="json", by_alias=True)


def _as_next_version(monkeypatch: pytest.MonkeyPatch, model: type[VersionedSpec], old: str, new: str) -> int:
    """Today's version becomes the previous release's: the next one renames `old` to `new`."""
    today = model.versioning

    def rename(data: dict[str, Any]) -> dict[str, Any]:
        data[new] = data.pop(old)
        return data

    migrations = {**today.migrations, today.current: rename}
    monkeypatch.setattr(model, "versioning", SpecVersioning(today.current + 1, migrations, today.what))
    return today.current + 1


@pytest.mark.parametrize(("flow", "model", "fixture", "old", "new"), CASES)
def test_a_stored_v1_spec_is_migrated_when_a_run_validates_its_parameters(
    monkeypatch: pytest.MonkeyPatch,
    flow: Flow[Any, Any],
    model: type[VersionedSpec],
    fixture: str,
    old: str,
    new: str,
) -> None:
    data = yaml.safe_load((FIXTURES / fixture).read_text())
    today = model.model_validate(data)
    # What the previous release stored: version 1, the field under its old name.
    stored = _stored_json(today)
    stored[old] = stored.pop(new)
    kept = dict(stored)
    next_version = _as_next_version(monkeypatch, model, old, new)

    spec = flow.validate_parameters({"spec": stored, "user": None})["spec"]

    assert isinstance(spec, model)
    assert spec.version == next_version
    assert spec.model_dump(exclude={"version"}) == today.model_dump(exclude={"version"})
    assert stored == kept, "the deployment's stored parameters are not rewritten by a run"
    # `job list` / `job show` read stored parameters through the same model.
    assert load_any_spec(stored) == spec


@pytest.mark.parametrize(("flow", "model", "fixture", "old", "new"), CASES)
def test_without_the_migration_the_stored_spec_would_be_refused(
    flow: Flow[Any, Any], model: type[VersionedSpec], fixture: str, old: str, new: str
) -> None:
    # The control for the test above: the renamed field alone is not accepted by today's model.
    stored = _stored_json(model.model_validate(yaml.safe_load((FIXTURES / fixture).read_text())))
    stored[old] = stored.pop(new)
    with pytest.raises(ParameterTypeError, match=old):
        flow.validate_parameters({"spec": stored, "user": None})


@pytest.mark.parametrize(("flow", "model", "fixture", "old", "new"), CASES)
def test_a_spec_stored_by_a_newer_release_is_refused_with_advice_at_run_time(
    flow: Flow[Any, Any], model: type[VersionedSpec], fixture: str, old: str, new: str
) -> None:
    stored = _stored_json(model.model_validate(yaml.safe_load((FIXTURES / fixture).read_text())))
    stored["version"] = model.versioning.current + 1
    with pytest.raises(ParameterTypeError, match=r"written by a newer bingobackup.*Upgrade bingobackup"):
        flow.validate_parameters({"spec": stored, "user": None})


@pytest.mark.parametrize(("flow", "model", "fixture", "old", "new"), CASES)
def test_todays_stored_specs_validate_unchanged_as_run_parameters(
    flow: Flow[Any, Any], model: type[VersionedSpec], fixture: str, old: str, new: str
) -> None:
    spec = load_any_spec(FIXTURES / fixture)
    assert isinstance(spec, model)
    assert flow.validate_parameters({"spec": _stored_json(spec), "user": None})["spec"] == spec
