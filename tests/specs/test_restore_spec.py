"""The restore spec: the DESIGN.md shape loads, defaults come from the backed-up VM (None here),
bad values are refused with the field named, and the verification code tracks the spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from bingobackup.restore.verification import code_matches, verification_code
from bingobackup.specs.loading import SpecError
from bingobackup.specs.restore import load_restore_spec

FIXTURE = Path(__file__).parent.parent / "fixtures" / "specs" / "restore-v1.yaml"


def base(**fields: object) -> dict[str, object]:
    return {
        "version": 1,
        "name": "r",
        "cloud": "c",
        "backup_host": "i-1",
        "pool": "p",
        "source": {"vm": "web"},
        **fields,
    }


def test_stored_v1_spec_keeps_loading_in_its_short_form() -> None:
    spec = load_restore_spec(FIXTURE)
    [item] = spec.vms
    assert (item.source.vm, item.source.set) == ("linux_mul_nic", "latest")
    assert item.target.nics[0].security_groups is None and item.target.nics[0].primary
    assert spec.options.write_limits.root[0].bytes_per_second == 50 * (1 << 20)
    assert spec.schedule.kind == "immediate" and spec.same_name == "suffix" and spec.power_on


def test_defaults_leave_every_target_field_to_the_backed_up_vm() -> None:
    spec = load_restore_spec(base())
    target = spec.vms[0].target
    assert (target.name, target.node, target.cpu, target.memory_mib, target.storage) == (None,) * 5
    assert spec.vms[0].source.set == "latest" and spec.kind == "vm"
    assert spec.options.reconnect_minutes == 10 and spec.options.parallel_disks_per_vm == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"target": {"nics": [{"index": 0, "ip": "10.1.1"}]}}, "ip must be keep, auto or an IPv4"),
        ({"target": {"nics": [{"index": 0, "mac": "zz"}]}}, "mac must be keep, auto or a MAC"),
        ({"same_name": "overwrite"}, "same_name"),
        ({"schedule": {"kind": "weekly"}}, "schedule"),
        ({"options": {"reconnect_minutes": 61}}, "reconnect_minutes"),
        ({"name": "bad name"}, "must start with a letter or digit"),
        ({"vms": [{"source": {"vm": "x"}}]}, "either source/target"),
        ({"batch": {"disk_name": "{vm}-{size}"}}, r"unknown placeholder\(s\) \{size\}"),
        ({"batch": {"disk_name": "{vm}-{"}}, "not a pattern of"),
        ({"batch": {"disk_name": "{vm}-data"}}, "needs {disk} or {n}"),
    ],
)
def test_bad_values_are_refused_naming_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises((SpecError, ValueError), match=message):
        load_restore_spec(base(**fields))


def test_a_spec_from_a_newer_bingobackup_is_refused_with_advice() -> None:
    with pytest.raises(SpecError, match="Upgrade bingobackup"):
        load_restore_spec(base(version=2))


def test_verification_code_is_stable_for_a_spec_and_changes_with_it() -> None:
    one, same, other = (
        load_restore_spec(base()),
        load_restore_spec(base()),
        load_restore_spec(base(power_on=False)),
    )
    code = verification_code(one)
    assert len(code) == 6 and code == verification_code(same) != verification_code(other)
    assert (
        code_matches(one, f" {code.lower()} ")
        and not code_matches(one, None)
        and not code_matches(other, code)
    )
