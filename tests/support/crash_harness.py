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
from collections.abc import Callable
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
from bingobackup.resources.pools import find_pool, open_registered_pool, pool_catalog_root, set_pool_retention
from bingobackup.resources.users import LOCAL_ADMIN
from bingobackup.restore.ledger import Ledger
from bingobackup.restore.verification import verification_code
from bingobackup.specs.restore import load_restore_spec
from bingobackup.specs.retention import RetentionPolicy
from flows.backup import job_tag
from flows.restore import limits_name
from support.flow import POOL_PASSPHRASE, Registered, bingobackup_command
from support.power_loss import journalled_env, lose_page_cache
from support.sim_admin import sim_admin
from tasks.blocks import PrefectRegistryStore
from tasks.limits import delete_tag_limits
from tasks.prune import open_pool_catalog
from tasks.verify import VerifySelection, verify_pool

RESULTS_ENV = "BINGOBACKUP_RELIABILITY_RESULTS"  # JSON lines, one per trial
TRIALS_ENV = "BINGOBACKUP_RELIABILITY_TRIALS"  # random-offset kills per scenario (the suite: 1)
SEED_ENV = "BINGOBACKUP_RELIABILITY_SEED"
LONG_ENV = "BINGOBACKUP_RELIABILITY_LONG"  # set: every named point of every scenario
ONLY_ENV = (
    "BINGOBACKUP_RELIABILITY_ONLY"  # ";"-separated plan keys ("restore vm;prune, power loss"): only these
)

MIB = 1 << 20
VM_NAME = "crash-vm"
RESTORED_VM = "crash-vm-restored"
RESTORED_DISK = "crash-disk-restored"
RESTORE_IMAGE_PREFIX = "bingobackup-restore"  # the images a VM restore registers (restore/steps.py)
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


def restore_job_name(kind: str) -> str:
    return f"restore-{kind}-crash"


def trials_per_scenario() -> int:
    return int(os.environ.get(TRIALS_ENV, "1"))


def long_campaign() -> bool:
    return bool(os.environ.get(LONG_ENV))


def wanted(scenario: str) -> bool:
    """Whether this campaign runs `scenario` (a key of the test's plan): all, unless ONLY_ENV
    names some (`python -m tests.reliability --only ...`: a part of the long campaign again)."""
    only = os.environ.get(ONLY_ENV)
    return not only or scenario in {name.strip() for name in only.split(";")}


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


def command_env(api_url: str, work: Path) -> dict[str, str]:
    """The environment of a `bingobackup` command a rig runs: the test server, a home under
    `work`, the pool's passphrase, and no crash point inherited from the test's own."""
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "BINGOBACKUP_HOME": str(work / "home"),
        "BINGOBACKUP_POOL_PASSPHRASE": POOL_PASSPHRASE,
    }
    for name in (CRASH_AT_ENV, CRASH_TRACE_ENV):
        env.pop(name, None)
    return env


class CrashRig:
    """One simulated cloud, one registered encrypted dedup pool (a local directory, or an S3
    bucket for an object pool), one VM whose disks change before each backup, and what every
    committed set must read back as."""

    def __init__(self, registered: Registered, work: Path, api_url: str, seed: int) -> None:
        self.registered = registered
        self.registration = find_pool(PrefectRegistryStore(), registered.pool)
        self.local = self.registration.s3 is None  # power loss, export-disk: a local pool only
        self.work = work
        self.rng = random.Random(seed)
        self.env = command_env(api_url, work)
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
        # The VM's disks as it has them (system disk first): where a restored VM has its own.
        self.devices = {
            b.volume_id: b.device_name for b in registered.client.get_instance(self.vm_id).block_devices
        }
        self.volumes.sort(key=self.devices.__getitem__)
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
        """Temporaries of a backup or restore: snapshots, `bingobackup-tmp` volumes, restore images."""
        client = self.registered.client
        return (
            [s.snapshot_id for s in client.describe_snapshots()]
            + [v.volume_id for v in client.describe_volumes() if v.name.startswith(TEMP_PREFIX)]
            + [i.image_id for i in client.describe_images() if i.name.startswith(RESTORE_IMAGE_PREFIX)]
        )

    def live_instances(self) -> dict[str, str]:
        """Instance id -> name of every VM not terminated."""
        return {
            i.instance_id: i.name
            for i in self.registered.client.describe_instances()
            if i.state.name not in ("terminated", "shutting-down")
        }

    def remove_leftover(self, resource_id: str) -> None:
        """A snapshot, image or temporary volume `leftovers()` named (after a failed trial)."""
        client = self.registered.client
        with contextlib.suppress(Exception):  # best effort: the trial already failed
            if resource_id.startswith("snap-"):
                client.delete_snapshot(resource_id)
            elif resource_id.startswith("ami-"):
                client.deregister_image(resource_id)
            else:
                client.delete_volume(resource_id)

    def volume_ids(self) -> set[str]:
        return {v.volume_id for v in self.registered.client.describe_volumes()}

    def remove_from_cloud(self, instances: set[str], volumes: set[str]) -> None:
        """Terminates `instances` and deletes `volumes` (detached first): a restore's results,
        gone before the next trial so the VM backed up keeps its own two disks."""
        ledger = Ledger()
        for instance in instances:
            ledger.add("instance", instance, "restored VM")
        for volume in volumes:
            ledger.add("volume", volume, "restored disk")
        assert ledger.clean_up(self.registered.client, timeout=60) == []

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
            assert self.local, "power loss is modelled for a local pool's directory only"
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

    def kill_and_rerun(
        self, trial: Trial, args: list[str], before_rerun: Callable[[], object] | None = None
    ) -> bool:
        """Runs `args` to be killed at `trial.point` (losing the page cache too in a power-loss
        trial), then, after `before_rerun`, again; False when the run ended before the point
        (nothing to rerun)."""
        code = self.run(args, crash_at=trial.point, power_loss=trial.power_loss)
        if code != -signal.SIGKILL:
            assert code == 0, self.last_output
            return False
        trial.killed = True
        trial.lost_at_power_loss = self.lost_at_power_loss
        if before_rerun is not None:
            before_rerun()
        if self.run(args) != 0:
            trial.problems.append(f"the rerun failed: {self.last_output[-2000:]}")
        return True

    def backup_args(self) -> list[str]:
        return ["backup", "run", str(self.spec_file)]

    def free_job_slot(self, job: str | None = None) -> None:
        # A killed run's concurrency slot lapses ~75 s after the kill (flows/admission.py);
        # freed by hand, as an operator's `job free-slots` does, so as not to wait.
        delete_tag_limits(job_tag(job or self.spec["name"]))

    def restore_args(self, kind: str, set_id: str) -> list[str]:
        """`restore vm|disk SPEC --confirm CODE` of the VM as backed up in `set_id`: the whole VM
        as a new one (`RESTORED_VM`), or its data disk as a new volume on the VM itself."""
        target: dict[str, Any] = (
            {"name": RESTORED_VM, "nics": [{"index": 0, "ip": "auto", "mac": "auto"}]}
            if kind == "vm"
            else {"disks": [{"volume": self.volumes[1], "name": RESTORED_DISK}]}
        )
        spec = {
            "version": 1,
            "name": restore_job_name(kind),
            "kind": kind,
            "cloud": self.registered.cloud,
            "backup_host": self.registered.hosts["cluster-a"],
            "pool": self.registered.pool,
            "vms": [{"source": {"vm": VM_NAME, "set": set_id}, "target": target}],
            "options": {"channels": 1},
        }
        spec_file = self.work / f"restore-{kind}.yaml"
        spec_file.write_text(yaml.safe_dump(spec))
        code = verification_code(load_restore_spec(spec))
        return ["restore", kind, str(spec_file), "--confirm", code]

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

    def backup_points(self) -> list[str]:
        """The crash points a backup like the trials' passes, in order: a first set (all of
        its chunks new), then a traced backup of changed disks (the trials' kind: only its
        changed chunks are new, so it passes fewer points than the first)."""
        self.backup()
        self.change_disks()
        before = self.catalog_sets()
        passed = self.points_passed(self.backup_args())
        (second,) = self.catalog_sets() - before
        self.remember(second)
        return passed

    def remember(self, set_id: str) -> None:
        for volume in self.volumes:
            self.expected[(set_id, volume)] = self.disk_sha(volume)

    # -- the pool and catalog --------------------------------------------------------------
    def pool(self) -> Pool:
        return open_registered_pool(self.registration)

    def catalog_sets(self) -> set[str]:
        return set(self.sets_newest_first())

    def sets_newest_first(self) -> list[str]:
        with open_pool_catalog(self.registration) as cat:
            frame = cat.list_sets()
        return list(frame["set_id"]) if len(frame) else []

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
            pool, pool_catalog_root(self.registration), VerifySelection(), flow_run_id=uuid.uuid4().hex
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
GC_POINTS = tuple(f"gc.{name}" for name in ("sweeping", "repack-packs", "repack-index", "repack-manifests"))
# The `store.*` points are a local pool's (its files' temp, fsync, rename, unlink steps).
LOCAL_GC_POINTS = (*GC_POINTS, "store.unlinked#1")  # a pack swept, its directory not fsynced
OBJECT_BACKUP_POINTS = tuple(p for p in BACKUP_POINTS if not p.startswith("store."))
# An object pool is write-once: no repack (its manifests cannot be rewritten), whole dead packs swept.
OBJECT_GC_POINTS = ("gc.condemned", "gc.sweeping")
POWER_LOSS_BACKUP_POINTS = (*BACKUP_POINTS, "store.synced#2")  # a blob's bytes durable, not renamed
RESTORE_POINTS = {
    "vm": (
        "restore.volume-created",
        "restore.volume-attached",
        "restore.chunk-written#2",  # mid-disk
        "restore.disk-written",
        "restore.image-registered",
        "restore.vm-launched",  # the new VM runs, its data disk not yet attached
        "restore.vm-complete",  # the VM whole, its snapshot, image and system volume not yet removed
    ),
    "disk": (
        "restore.volume-created",
        "restore.chunk-written#2",
        "restore.disk-written",
        "restore.disk-attached",  # on the VM, not yet handed over
    ),
}
# After the tombstone: the sets are gone for the catalog; what the pool deleted must stay deleted.
AFTER_TOMBSTONE = "delete.after-tombstone"
DELETE_POINTS = ("delete.blob-removed#1", "store.unlinked#2", "delete.before-tombstone", AFTER_TOMBSTONE)
PRUNE_POINTS = ("delete.blob-removed#1", "delete.before-tombstone", AFTER_TOMBSTONE)
PRUNE_KEEP_LAST = 1  # the pool's retention in the prune scenario: each trial's backup makes one set too many


def backup_trial(rig: CrashRig, point: str, power_loss: bool = False) -> Trial:
    trial = Trial(_name(rig, "backup", power_loss), point, power_loss=power_loss)
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
    trial = Trial(_name(rig, "sets delete", power_loss), point, power_loss=power_loss)
    doomed = rig.set_sharing_packs()
    before = rig.catalog_sets()
    if not rig.kill_and_rerun(trial, delete_args(rig, doomed)):
        return trial
    rig.check(trial, before - {doomed})
    return trial


def gc_trial(rig: CrashRig, point: str, *, make_garbage: bool = True, power_loss: bool = False) -> Trial:
    """`gc` with repack killed at `point`; with `make_garbage`, a set is backed up and deleted
    first (without, the caller has just deleted one)."""
    trial = Trial(_name(rig, "gc + repack" if rig.local else "gc", power_loss), point, power_loss=power_loss)
    if make_garbage:
        make_gc_garbage(rig)
    if not rig.kill_and_rerun(trial, gc_args(rig)):
        return trial
    temps = (
        sorted(str(p.relative_to(rig.registered.pool_dir)) for p in rig.registered.pool_dir.rglob(".tmp-*"))
        if rig.local
        else []  # an object pool's uploads are whole or absent
    )
    if temps:
        trial.problems.append(f"temp files of killed writers left after gc: {temps}")
    rig.check(trial)
    return trial


def delete_args(rig: CrashRig, set_id: str) -> list[str]:
    return ["sets", "delete", set_id, "--pool", rig.registered.pool, "--yes"]


def gc_args(rig: CrashRig) -> list[str]:
    return ["gc", "--pool", rig.registered.pool, "--repack-threshold", "90"]


def make_gc_garbage(rig: CrashRig) -> None:
    """A set deleted whose packs a newer set still partly uses: what `gc` frees and repacks;
    on an object pool (no repack), the newest set, whose new chunks nothing else uses."""
    doomed = rig.set_sharing_packs() if rig.local else rig.backup()
    assert rig.run(delete_args(rig, doomed)) == 0, rig.last_output


def points_of_deletion(rig: CrashRig) -> int:
    """How many crash points a clean set deletion passes (traced; the set stays deleted).
    Killed after its tombstone, `sets delete` has done its work: its rerun says the set was
    already deleted and exits 0."""
    return len(rig.points_passed(delete_args(rig, rig.set_sharing_packs())))


def points_of_gc(rig: CrashRig) -> int:
    """How many crash points a clean `gc` with repack passes (traced, over fresh garbage)."""
    make_gc_garbage(rig)
    return len(rig.points_passed(gc_args(rig)))


def restore_trial(rig: CrashRig, kind: str, point: str, set_id: str) -> Trial:
    """`restore vm|disk` of `set_id` killed at `point`, then run again: one restored VM (or
    disk) holding the set's bytes, nothing else new in the cloud, the pool untouched."""
    trial = Trial(f"restore {kind}", point)
    sets, instances, volumes = rig.catalog_sets(), set(rig.live_instances()), rig.volume_ids()
    args = rig.restore_args(kind, set_id)
    if not rig.kill_and_rerun(trial, args, lambda: rig.free_job_slot(limits_name(restore_job_name(kind)))):
        rig.remove_from_cloud(set(rig.live_instances()) - instances, rig.volume_ids() - volumes)
        return trial
    new_instances = {i: n for i, n in rig.live_instances().items() if i not in instances}
    new_volumes = rig.volume_ids() - volumes
    check_restored(rig, trial, kind, set_id, new_instances, new_volumes)
    rig.check(trial, sets)
    # Gone before the next trial, whatever was found (the VM backed up keeps its own two disks).
    rig.remove_from_cloud(set(new_instances), new_volumes)
    for leftover in rig.leftovers():  # a killed run's snapshot or image, reported by check()
        rig.remove_leftover(leftover)
    return trial


def check_restored(
    rig: CrashRig, trial: Trial, kind: str, set_id: str, instances: dict[str, str], volumes: set[str]
) -> None:
    """The rerun's VM (or disk) holds the set's bytes and is all the restores left; problems
    go into `trial`."""
    client = rig.registered.client
    if kind == "vm":
        if list(instances.values()) != [RESTORED_VM]:
            trial.problems.append(
                f"new VMs after the rerun: {sorted(instances.items())}, expected one {RESTORED_VM}"
            )
            return
        (instance_id,) = instances
        held = {b.device_name: b.volume_id for b in client.get_instance(instance_id).block_devices}
        wanted = {rig.devices[v]: v for v in rig.volumes}  # device -> source volume
    else:
        if instances:
            trial.problems.append(f"a disk restore left new VMs: {sorted(instances.items())}")
            return
        held = {
            a.device: v.volume_id
            for v in client.describe_volumes()
            if v.volume_id in volumes
            for a in v.attachments
            if a.instance_id == rig.vm_id
        }
        wanted = {device: rig.volumes[1] for device in held}  # the one new disk: the data disk's bytes
    if set(held.values()) != volumes or len(held) != len(wanted) or set(held) != set(wanted):
        trial.problems.append(
            f"restored disks {held}, new volumes {sorted(volumes)}: not one per disk restored"
        )
        return
    for device, volume in held.items():
        if rig.disk_sha(volume) != rig.expected[(set_id, wanted[device])]:
            trial.data_lost = True
            trial.problems.append(f"restored {device} ({volume}) differs from set {set_id} {wanted[device]}")


def prune_trial(rig: CrashRig, point: str, power_loss: bool = False) -> Trial:
    """`prune --pool P --yes` killed at `point` after a backup made one set more than the
    pool's retention (`PRUNE_KEEP_LAST`) keeps; the rerun leaves exactly the newest sets."""
    trial = Trial(_name(rig, "prune", power_loss), point, power_loss=power_loss)
    rig.backup()
    keep = set(rig.sets_newest_first()[:PRUNE_KEEP_LAST])
    if not rig.kill_and_rerun(trial, prune_args(rig)):
        return trial
    rig.check(trial, keep)
    return trial


def prune_args(rig: CrashRig) -> list[str]:
    return ["prune", "--pool", rig.registered.pool, "--yes"]


def keep_last_retention(rig: CrashRig) -> None:
    """The pool's default retention (the rig's job has none): the newest `PRUNE_KEEP_LAST` sets
    (as `pool set-retention --keep-last` sets it)."""
    policy = RetentionPolicy(keep_last=PRUNE_KEEP_LAST)
    set_pool_retention(PrefectRegistryStore(), LOCAL_ADMIN, rig.registered.pool, policy)


def _name(rig: CrashRig, scenario: str, power_loss: bool) -> str:
    where = "" if rig.local else ", object pool"
    return f"{scenario}{where}, power loss" if power_loss else f"{scenario}{where}"


def finished(trial: Trial) -> Trial:
    """The trial with its verdict, recorded for the campaign's table."""
    trial.survived = trial.killed and not trial.problems
    record(trial)
    return trial
