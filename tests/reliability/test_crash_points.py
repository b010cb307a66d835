"""Crash points: backup, export-disk, set deletion, GC with repack, restore (VM and disk) and
prune, on a local pool and (backup, GC) an object pool, each killed (SIGKILL) at named step
boundaries and at seeded random offsets, then rerun; see crash_harness.py.

The suite runs a short seeded campaign (a few kills); `make reliability` runs every named
point and more random offsets (BINGOBACKUP_RELIABILITY_LONG, _TRIALS) and prints the table.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from support.crash_harness import (
    BACKUP_POINTS,
    DELETE_POINTS,
    EXPORT_POINTS,
    LOCAL_GC_POINTS,
    OBJECT_BACKUP_POINTS,
    OBJECT_GC_POINTS,
    POWER_LOSS_BACKUP_POINTS,
    PRUNE_POINTS,
    RESTORE_POINTS,
    SEED_ENV,
    CrashRig,
    Trial,
    backup_trial,
    delete_trial,
    export_trial,
    finished,
    gc_trial,
    keep_last_retention,
    long_campaign,
    points_of_deletion,
    points_of_gc,
    prune_args,
    prune_trial,
    random_points,
    restore_trial,
    trials_per_scenario,
    wanted,
)
from support.flow import Registered, object_dedup_pool, register_cloud_and_pool

# The suite's short campaign: one seeded random offset into a backup and into an export, a
# deletion killed before its tombstone, a repack killed while rewriting manifests, a backup
# losing power after a pool blob's rename, before its directory's fsync, a VM restore killed
# once its new VM runs (the half-made VM must go), and a prune losing power after its
# tombstone (the deleted manifests must not come back). The object pool's trials and the
# disk restore's run in the long campaign only (the suite's time budget).
SHORT = {
    "backup": (),
    "export": (),
    "delete": ("delete.before-tombstone",),
    "gc": ("gc.repack-manifests",),
    "backup, power loss": ("store.renamed#2",),
    "delete, power loss": (),
    "gc, power loss": (),
    "restore vm": ("restore.vm-launched",),
    "restore disk": (),
    "prune": (),
    "prune, power loss": ("delete.after-tombstone",),
    "backup, object pool": (),
    "gc, object pool": (),
}
LONG = {
    "backup": BACKUP_POINTS,
    "export": EXPORT_POINTS,
    "delete": DELETE_POINTS,
    "gc": LOCAL_GC_POINTS,
    "backup, power loss": POWER_LOSS_BACKUP_POINTS,
    "delete, power loss": DELETE_POINTS,
    "gc, power loss": LOCAL_GC_POINTS,
    "restore vm": RESTORE_POINTS["vm"],
    "restore disk": RESTORE_POINTS["disk"],
    "prune": PRUNE_POINTS,
    "prune, power loss": PRUNE_POINTS,
    "backup, object pool": OBJECT_BACKUP_POINTS,
    "gc, object pool": OBJECT_GC_POINTS,
}


def _plan() -> dict[str, tuple[str, ...]]:
    return {
        name: points if wanted(name) else () for name, points in (LONG if long_campaign() else SHORT).items()
    }


def _random(rng: random.Random, scenario: str, passed: int | Callable[[], int]) -> list[str]:
    """The seeded random offsets of `scenario`, from `passed` points (or a clean run `passed()`
    traces: run only when the scenario is wanted)."""
    if not wanted(scenario):
        return []
    return random_points(rng, passed if isinstance(passed, int) else passed(), trials_per_scenario())


def _rig(registered: Registered, tmp_path: Path, prefect_server) -> tuple[CrashRig, random.Random]:
    seed = int(os.environ.get(SEED_ENV, "26"))
    return CrashRig(registered, tmp_path, prefect_server.url, seed), random.Random(seed)


def _assert_all_survived(trials: list[Trial]) -> None:
    problems = [f"{t.scenario} killed at {t.point}: {p}" for t in trials for p in t.problems]
    assert problems == []
    # A random offset may lie past a run's end (the long campaign counts those); a named
    # point may not, nor any of the short campaign's (seeded, so it kills every time).
    unreached = [
        t.point for t in trials if not t.killed and (not t.point.startswith("*") or not long_campaign())
    ]
    assert unreached == []
    assert max((t.resent_share for t in trials), default=0.0) < 0.05, [
        (t.point, t.resent_share) for t in trials
    ]


# Seven kills in the suite, each a command run twice: minutes on two busy cores.
@pytest.mark.timeout(3600 if long_campaign() else 900)
def test_every_killed_command_reruns_to_a_consistent_pool(
    registered: Registered, tmp_path: Path, prefect_server
) -> None:
    rig, rng = _rig(registered, tmp_path, prefect_server)
    plan = _plan()
    trials: list[Trial] = []

    passed = rig.backup_points()
    for point in [*plan["backup"], *_random(rng, "backup", len(passed))]:
        trials.append(finished(backup_trial(rig, point)))

    newest = max(rig.expected)[0]
    chunks = len(rig.pool().load_manifest(newest, rig.volumes[0]).chunks)
    for point in [*plan["export"], *_random(rng, "export", chunks)]:
        trials.append(finished(export_trial(rig, point, newest)))

    deletions = [*plan["delete"]]
    if long_campaign():  # random offsets into a deletion, drawn from a clean one traced
        deletions += _random(rng, "delete", lambda: points_of_deletion(rig))
    for point in deletions:
        trials.append(finished(delete_trial(rig, point)))
    collections = [*plan["gc"]]
    if long_campaign():
        collections += _random(rng, "gc", lambda: points_of_gc(rig))
    for number, point in enumerate(collections):
        # The short campaign collects the set its deletion trial removed; the long one makes
        # garbage for each kill.
        trials.append(finished(gc_trial(rig, point, make_garbage=long_campaign() or number > 0)))

    power_loss_backups = [*plan["backup, power loss"]]
    if long_campaign():
        power_loss_backups += _random(rng, "backup, power loss", len(passed))
    for point in power_loss_backups:
        trials.append(finished(backup_trial(rig, point, power_loss=True)))
    power_loss_deletions = [*plan["delete, power loss"]]
    power_loss_collections = [*plan["gc, power loss"]]
    if long_campaign():
        power_loss_deletions += _random(rng, "delete, power loss", lambda: points_of_deletion(rig))
        power_loss_collections += _random(rng, "gc, power loss", lambda: points_of_gc(rig))
    for point in power_loss_deletions:
        trials.append(finished(delete_trial(rig, point, power_loss=True)))
    for point in power_loss_collections:
        trials.append(finished(gc_trial(rig, point, power_loss=True)))

    trials += killed_restores(rig, rng, plan)
    trials += killed_prunes(rig, rng, plan)

    _assert_all_survived(trials)
    if not long_campaign():  # its power loss undid the renamed blob: the model did bite
        assert [t.lost_at_power_loss > 0 for t in trials if t.scenario == "backup, power loss"] == [True]


def killed_restores(rig: CrashRig, rng: random.Random, plan: dict[str, tuple[str, ...]]) -> list[Trial]:
    """`restore vm|disk` of the newest set killed: the rerun restores the VM (disk) byte for
    byte, and the cloud holds nothing else of either run."""
    newest = rig.sets_newest_first()[0]
    trials = []
    for kind in ("vm", "disk"):
        points = [*plan[f"restore {kind}"]]
        if long_campaign() and wanted(f"restore {kind}"):  # offsets into a clean restore, traced
            instances, volumes = set(rig.live_instances()), rig.volume_ids()
            passed = len(rig.points_passed(rig.restore_args(kind, newest)))
            rig.remove_from_cloud(set(rig.live_instances()) - instances, rig.volume_ids() - volumes)
            points += _random(rng, f"restore {kind}", passed)
        for point in points:
            trials.append(finished(restore_trial(rig, kind, point, newest)))
    return trials


def killed_prunes(rig: CrashRig, rng: random.Random, plan: dict[str, tuple[str, ...]]) -> list[Trial]:
    """`prune --pool --yes` killed (also losing power): the rerun leaves exactly the sets the
    pool's retention keeps. The first prune removes every set but the newest."""
    keep_last_retention(rig)
    points, power_loss_points = [*plan["prune"]], [*plan["prune, power loss"]]
    if long_campaign() and (
        wanted("prune") or wanted("prune, power loss")
    ):  # offsets into a clean prune, traced
        assert rig.run(prune_args(rig)) == 0, rig.last_output
        rig.backup()
        passed = len(rig.points_passed(prune_args(rig)))
        points += _random(rng, "prune", passed)
        power_loss_points += _random(rng, "prune, power loss", passed)
    trials = [finished(prune_trial(rig, point)) for point in points]
    trials += [finished(prune_trial(rig, point, power_loss=True)) for point in power_loss_points]
    return trials


@pytest.fixture
def on_object_pool(prefect_server, sim, cloud_client, tmp_path: Path, moto_s3: str) -> Registered:
    return register_cloud_and_pool(sim, cloud_client, tmp_path / "no-local-pool", object_dedup_pool(moto_s3))


# Long campaign only: moto's server makes each object-pool run slow, and the suite's time
# budget holds the local kills; `make reliability` runs every named point here.
@pytest.mark.skipif(
    not long_campaign() or not (wanted("backup, object pool") or wanted("gc, object pool")),
    reason="the object-pool crash trials run in `make reliability`",
)
def test_killed_backups_and_gc_on_an_object_pool_rerun_to_a_consistent_pool(
    on_object_pool: Registered, tmp_path: Path, prefect_server
) -> None:
    rig, rng = _rig(on_object_pool, tmp_path, prefect_server)
    plan = _plan()
    trials: list[Trial] = []

    passed = rig.backup_points()
    for point in [*plan["backup, object pool"], *_random(rng, "backup, object pool", len(passed))]:
        trials.append(finished(backup_trial(rig, point)))

    collections = [*plan["gc, object pool"]]
    if long_campaign():
        collections += _random(rng, "gc, object pool", lambda: points_of_gc(rig))
    for point in collections:
        trials.append(finished(gc_trial(rig, point)))

    _assert_all_survived(trials)
