"""The crash-point harness: a real `bingobackup` command killed (SIGKILL) at a named step
boundary or at a seeded random one of the crash points it passes (bingobackup/crashpoints.py),
then run again, and the pool, catalog and cloud checked.

After each kill: the rerun of the same command completes; no backup set is visible
half-written (every set the catalog lists has its manifests and reads back); every earlier
set exports byte-for-byte (SHA-256); the cloud holds no snapshot or temporary volume; the
pool passes `verify`. Each trial is appended to the results file (`RESULTS_ENV`), which
`python -m tests.reliability` turns into the table of docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bingobackup.crashpoints import ANY_POINT, CRASH_AT_ENV, CRASH_TRACE_ENV
from bingobackup.jobs.staging import TEMP_PREFIX
from bingobackup.mover.restore import write_disk_from_pool
from bingobackup.pools import Pool
from bingobackup.pools.dedup import DedupPool
from bingobackup.pools.writer import ZERO_LOCATION
from bingobackup.resources.pools import open_local_pool
from catalog import Catalog
from flows.backup import job_tag
from support.flow import POOL_PASSPHRASE, Registered, bingobackup_command
from support.power_loss import journalled_env, lose_page_cache
from support.sim_admin import sim_admin
from tasks.limits import delete_tag_limits
from tasks.verify import VerifySelection, verify_pool

RESULTS_ENV = "BINGOBACKUP_RELIABILITY_RESULTS"  # JSON lines, one per trial
TRIALS_ENV = "BINGOBACKUP_RELIABILITY_TRIALS"  # random-offset kills per scenario (the suite: 1)
SEED_ENV = "BINGOBACKUP_RELIABILITY_SEED"
LONG_ENV = "BINGOBACKUP_RELIABILITY_LONG"  # set: every named point of every scenario

MIB = 1 << 20
VM_NAME = "crash-vm"
DISK_MIB = (16, 8)  # two disks: 4 and 2 chunks of the pool's 4 MiB
CHANGED_MIB_PER_BACKUP = 8  # new data per backup, so each killed run has chunks to send


@dataclass
class Trial:
    scenario: str
    point: str  # a named point, or "*#n": the n-th point reached
    killed: bool = False  # the process died at the point (False: the run ended before it)
    survived: bool = False  # the rerun completed and every check held
    data_lost: bool = False  # an earlier set no longer reads back byte-for-byte
    resent_share: float = 0.0  # bytes the rerun sent again / bytes the killed run had stored
    power_loss: bool = False  # the kill also lost the page cache (power_loss.py)
    lost_at_power_loss: int = 0  # directory entries undone and files emptied by the loss
    uncommitted_sets: int = 0  # sets with manifests in the pool that no catalog row commits
    problems: list[str] = field(default_factory=list)


def trials_per_scenario() -> int:
    return int(os.environ.get(TRIALS_ENV, "1"))


def long_campaign() -> bool:
    return bool(os.environ.get(LONG_ENV))


def record(trial: Trial) -> None:
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(trial)) + "\n")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(4 * MIB):
            digest.update(block)
    return digest.hexdigest()


class CrashRig:
    """One simulated cloud, one registered encrypted dedup pool, one VM whose disks change
    before each backup, and what every committed set must read back as."""

    def __init__(self, registered: Registered, work: Path, api_url: str, seed: int) -> None:
        self.registered = registered
        self.work = work
        self.rng = random.Random(seed)
        self.env = {
            **os.environ,
            "PREFECT_API_URL": api_url,
            "BINGOBACKUP_HOME": str(work / "home"),
            "BINGOBACKUP_POOL_PASSPHRASE": POOL_PASSPHRASE,
        }
        for name in (CRASH_AT_ENV, CRASH_TRACE_ENV):
            self.env.pop(name, None)
        images = []
        for number, size in enumerate(DISK_MIB):
            image = work / f"disk{number}.raw"
            image.write_bytes(self.rng.randbytes(size * MIB))
            images.append(str(image))
        added = sim_admin(
            registered.sim, "POST", "vms", {"name": VM_NAME, "cluster": "cluster-a", "disks": images}
        )
        self.vm_id = added["instance_id"]
        self.volumes = [
            v.volume_id
            for v in registered.client.describe_volumes()
            if any(a.instance_id == self.vm_id for a in v.attachments)
        ]
        assert len(self.volumes) == len(DISK_MIB), self.volumes
        # One channel per disk: a disk's new chunks go to one pack, so a set deletion leaves
        # packs part live (set_sharing_packs), as a large disk's 16 MiB packs usually are.
        self.spec = registered.spec(content=[{"vm": VM_NAME}], options={"channels": 1})
        self.spec_file = work / "job.yaml"
        self.spec_file.write_text(yaml.safe_dump(self.spec))
        self.expected: dict[tuple[str, str], str] = {}  # (set, volume) -> SHA-256 of the disk
        self.last_output = ""
        self.lost_at_power_loss = 0

    # -- the cloud -------------------------------------------------------------------------
    def change_disks(self) -> None:
        """New bytes in every disk (whole chunks: each backup has new chunks to store)."""
        for volume, size in zip(self.volumes, DISK_MIB, strict=True):
            offset = self.rng.randrange(0, size // 4) * 4 * MIB
            length = min(CHANGED_MIB_PER_BACKUP * MIB, size * MIB - offset)
            self.registered.sim.write_volume(volume, offset, self.rng.randbytes(length))

    def set_sharing_packs(self) -> str:
        """A set to delete whose packs a newer set still partly uses: deleting it leaves packs
        part live, which GC repacks: the set's new chunks are the first two of the first
        disk, and the newer set shares the second."""
        first = self.volumes[0]  # one disk read by one channel: its new chunks share a pack
        self.registered.sim.write_volume(first, 0, self.rng.randbytes(8 * MIB))
        doomed = self.backup(change=False)
        self.registered.sim.write_volume(first, 0, self.rng.randbytes(4 * MIB))
        self.backup(change=False)
        return doomed

    def disk_sha(self, volume: str) -> str:
        return file_sha256(self.registered.volume_file(volume))

    def leftovers(self) -> list[str]:
        client = self.registered.client
        return [s.snapshot_id for s in client.describe_snapshots()] + [
            v.volume_id for v in client.describe_volumes() if v.name.startswith(TEMP_PREFIX)
        ]

    # -- commands --------------------------------------------------------------------------
    def run(
        self,
        args: list[str],
        crash_at: str | None = None,
        trace: Path | None = None,
        power_loss: bool = False,
    ) -> int:
        """Runs `bingobackup args`; with `power_loss`, a kill also loses what the page cache
        held of the pool (power_loss.py)."""
        env = dict(self.env)
        if crash_at:
            env[CRASH_AT_ENV] = crash_at
        if trace:
            env[CRASH_TRACE_ENV] = str(trace)
        journal = self.work / f"journal-{uuid.uuid4().hex[:8]}"
        if power_loss:
            env = journalled_env(env, self.registered.pool_dir, journal)
        process = subprocess.Popen(
            bingobackup_command(*args),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the kill takes its whole group, as a dead host's would
        )
        try:
            output, _ = process.communicate(timeout=600)
        finally:  # a run that outlived its time (or a test stopped midway) leaves nothing behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        self.last_output = output.decode(errors="replace")
        self.lost_at_power_loss = 0
        if power_loss and process.returncode == -signal.SIGKILL:
            # No journal: killed before its first write to the pool (the loss undoes nothing).
            self.lost_at_power_loss = sum(lose_page_cache(journal))
        return process.returncode

    def kill_and_rerun(self, trial: Trial, args: list[str]) -> bool:
        """Runs `args` to be killed at `trial.point` (losing the page cache too in a power-loss
        trial), then again; False when the run ended before the point (nothing to rerun)."""
        code = self.run(args, crash_at=trial.point, power_loss=trial.power_loss)
        if code != -signal.SIGKILL:
            assert code == 0, self.last_output
            return False
        trial.killed = True
        trial.lost_at_power_loss = self.lost_at_power_loss
        if self.run(args) != 0:
            trial.problems.append(f"the rerun failed: {self.last_output[-2000:]}")
        return True

    def backup_args(self) -> list[str]:
        return ["backup", "run", str(self.spec_file)]

    def free_job_slot(self) -> None:
        # A killed run's concurrency slot lapses ~75 s after the kill (flows/admission.py);
        # freed by hand, as an operator's `job free-slots` does, so as not to wait.
        delete_tag_limits(job_tag(self.spec["name"]))

    def backup(self, change: bool = True) -> str:
        """A clean backup of the VM (its disks changed first); returns the set id and records
        its disks' SHA-256."""
        if change:
            self.change_disks()
        before = self.catalog_sets()
        assert self.run(self.backup_args()) == 0, self.last_output
        (new,) = self.catalog_sets() - before
        self.remember(new)
        return new

    def remember(self, set_id: str) -> None:
        for volume in self.volumes:
            self.expected[(set_id, volume)] = self.disk_sha(volume)

    # -- the pool and catalog --------------------------------------------------------------
    def pool(self) -> Pool:
        return open_local_pool("dedup", self.registered.pool_dir, POOL_PASSPHRASE, self.registered.pool)

    def catalog_sets(self) -> set[str]:
        with Catalog([(self.registered.pool, str(self.registered.pool_dir), None)]) as cat:
            frame = cat.list_sets()
        return set(frame["set_id"]) if len(frame) else set()

    def export_sha(self, pool: Pool, set_id: str, volume: str) -> str:
        output = self.work / f"check-{uuid.uuid4().hex[:8]}.raw"
        try:
            write_disk_from_pool(pool, pool.load_manifest(set_id, volume), output)
            return file_sha256(output)
        finally:
            output.unlink(missing_ok=True)

    def garbage_bytes(self, pool: Pool) -> int:
        """Stored data bytes that no manifest references (chunks stored twice, dead packs)."""
        assert isinstance(pool, DedupPool)
        stored = sum(info.size for prefix in ("chunks/", "data/") for info in pool.store.list(prefix))
        live: dict[str, int] = {}
        for set_id, volume in pool.list_manifests():
            for ref in pool.load_manifest(set_id, volume).chunks:
                if ref.location != ZERO_LOCATION:
                    live[ref.location] = ref.stored_size
        return stored - sum(live.values())

    def stored_bytes(self, pool: Pool) -> int:
        return sum(info.size for prefix in ("chunks/", "data/") for info in pool.store.list(prefix))

    def check(self, trial: Trial, expect_sets: set[str] | None = None) -> None:
        """Every property a user relies on after the rerun; problems go into `trial`."""
        sets = self.catalog_sets()
        if expect_sets is not None and sets != expect_sets:
            trial.problems.append(f"catalog lists {sorted(sets)}, expected {sorted(expect_sets)}")
        pool = self.pool()
        in_pool = {s for s, _ in pool.list_manifests()}
        trial.uncommitted_sets = len(in_pool - sets)  # invisible, but their chunks stay pinned
        if trial.uncommitted_sets:
            trial.problems.append(f"sets in the pool the catalog never committed: {sorted(in_pool - sets)}")
        for set_id in sorted(sets):
            if set_id not in in_pool:
                trial.problems.append(f"set {set_id} is listed but has no manifest in the pool")
        for (set_id, volume), sha in sorted(self.expected.items()):
            if set_id not in sets:
                continue  # deleted on purpose by the scenario
            try:
                got = self.export_sha(pool, set_id, volume)
            except Exception as error:  # a failed read is what we report
                got = f"unreadable: {error}"
            if got != sha:
                trial.data_lost = True
                trial.problems.append(f"set {set_id} disk {volume} exports as {got[:80]}, not {sha[:12]}")
        left = self.leftovers()
        if left:
            trial.problems.append(f"left in the cloud: {left}")
        report = verify_pool(
            pool, (str(self.registered.pool_dir), None), VerifySelection(), flow_run_id=uuid.uuid4().hex
        )
        if not report.ok:
            trial.problems.append(f"verify: {report.headline()} {report.damage_rows()[:3]}")

    # -- one trial -------------------------------------------------------------------------
    def points_passed(self, args: list[str], prepare: Any = None) -> list[str]:
        """The crash points a clean run of `args` passes, in order (the rig is left as a
        clean run leaves it: the caller undoes nothing)."""
        trace = self.work / f"trace-{uuid.uuid4().hex[:8]}"
        assert self.run(args, trace=trace) == 0, self.last_output
        return trace.read_text().splitlines() if trace.exists() else []


def random_points(rng: random.Random, passed: int, count: int) -> list[str]:
    """`count` seeded offsets into a run passing `passed` crash points: `*#n`."""
    if passed == 0:
        return []
    return [f"{ANY_POINT}#{n}" for n in sorted(rng.sample(range(1, passed + 1), min(count, passed)))]


# -- the scenarios ------------------------------------------------------------------------
BACKUP_POINTS = (
    "backup.after-snapshot",
    "pool.chunk-stored#3",  # mid-disk
    "pool.before-manifest",  # a disk's chunks durable, its manifest not yet written
    "catalog.before-commit",  # after the last chunk, before the catalog commit
    "catalog.mid-write",  # the set's chunk/disk/VM rows written, its commit record not
    "catalog.after-commit",  # committed, the run's record not yet written
    "backup.before-snapshot-cleanup",  # every disk written, the snapshots not yet deleted
    "store.temp-written#2",  # a pool blob written to its temp file, not yet fsynced
    "store.renamed#2",  # a pool blob renamed into place, its directory not yet fsynced
)
EXPORT_POINTS = ("restore.chunk-written#2",)
DELETE_POINTS = ("delete.blob-removed#1", "delete.before-tombstone")
GC_POINTS = tuple(f"gc.{name}" for name in ("sweeping", "repack-packs", "repack-index", "repack-manifests"))


def backup_trial(rig: CrashRig, point: str, power_loss: bool = False) -> Trial:
    trial = Trial(_name("backup", power_loss), point, power_loss=power_loss)
    rig.change_disks()
    before, pool = rig.catalog_sets(), rig.pool()
    garbage_before, stored_before = rig.garbage_bytes(pool), rig.stored_bytes(pool)
    code = rig.run(rig.backup_args(), crash_at=point, power_loss=power_loss)
    if code != -signal.SIGKILL:
        assert code == 0, rig.last_output
        for set_id in rig.catalog_sets() - before:
            rig.remember(set_id)
        return trial  # the run ended before the point: not a kill
    trial.killed = True
    trial.lost_at_power_loss = rig.lost_at_power_loss
    stored_by_killed = rig.stored_bytes(rig.pool()) - stored_before
    rig.free_job_slot()
    if rig.run(rig.backup_args()) != 0:
        trial.problems.append(f"the rerun failed: {rig.last_output[-2000:]}")
    new = rig.catalog_sets() - before
    if not new:
        trial.problems.append("the rerun committed no set")
    for set_id in new:  # the killed run's own set too, when it was killed after its commit
        rig.remember(set_id)
    resent = max(0, rig.garbage_bytes(rig.pool()) - garbage_before)
    trial.resent_share = resent / stored_by_killed if stored_by_killed > 0 else 0.0
    rig.check(trial, before | new)
    return trial


def export_trial(rig: CrashRig, point: str, set_id: str) -> Trial:
    trial = Trial("export-disk", point)
    volume = rig.volumes[0]
    output = rig.work / "export" / "disk.raw"
    output.parent.mkdir(exist_ok=True)
    args = ["export-disk", "--pool", str(rig.registered.pool_dir), "--set", set_id]
    args += ["--volume", volume, "--output", str(output), "--force"]
    if not rig.kill_and_rerun(trial, args):
        return trial
    if not trial.problems and file_sha256(output) != rig.expected[(set_id, volume)]:
        trial.data_lost = True
        trial.problems.append(f"the rerun's image of {set_id} {volume} has other bytes")
    left = sorted(p.name for p in output.parent.iterdir() if p != output)
    if left:
        trial.problems.append(f"the export left {left} next to its output")
    rig.check(trial)
    return trial


def delete_trial(rig: CrashRig, point: str, power_loss: bool = False) -> Trial:
    trial = Trial(_name("sets delete", power_loss), point, power_loss=power_loss)
    doomed = rig.set_sharing_packs()
    before = rig.catalog_sets()
    args = ["sets", "delete", doomed, "--pool", rig.registered.pool, "--yes"]
    if not rig.kill_and_rerun(trial, args):
        return trial
    rig.check(trial, before - {doomed})
    return trial


def gc_trial(rig: CrashRig, point: str, *, make_garbage: bool = True, power_loss: bool = False) -> Trial:
    """`gc` with repack killed at `point`; with `make_garbage`, a set is backed up and deleted
    first (without, the caller has just deleted one)."""
    trial = Trial(_name("gc + repack", power_loss), point, power_loss=power_loss)
    if make_garbage:
        doomed = rig.set_sharing_packs()
        args = ["sets", "delete", doomed, "--pool", rig.registered.pool, "--yes"]
        assert rig.run(args) == 0, rig.last_output
    args = ["gc", "--pool", rig.registered.pool, "--repack-threshold", "90"]
    if not rig.kill_and_rerun(trial, args):
        return trial
    temps = sorted(
        str(p.relative_to(rig.registered.pool_dir)) for p in rig.registered.pool_dir.rglob(".tmp-*")
    )
    if temps:
        trial.problems.append(f"temp files of killed writers left after gc: {temps}")
    rig.check(trial)
    return trial


def _name(scenario: str, power_loss: bool) -> str:
    return f"{scenario}, power loss" if power_loss else scenario


def finished(trial: Trial) -> Trial:
    """The trial with its verdict, recorded for the campaign's table."""
    trial.survived = trial.killed and not trial.problems
    record(trial)
    return trial
