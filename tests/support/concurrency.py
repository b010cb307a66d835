"""The concurrency campaign's rig (issue 26): several `bingobackup backup run` processes, one
per VM, writing one encrypted dedup pool at once, beside an `export-disk` of an earlier set
and a `sets delete` + `gc` of another, all real CLI processes against the simulator (as
crash_harness.CrashRig runs them); then the same properties as after a crash, and the pool's
stored chunk bytes against a serial run of the same disks.

The VMs share content: every disk starts with the same two chunks, and each round writes one
new chunk that every VM gets (the writers meet it at the same moment: a dedup race) and one
that only that VM gets. A race that stores a chunk twice shows as a duplicate copy (two
locations of one chunk id); `gc` keeps one copy where the storage can rewrite a manifest
(local pools), so there the stored bytes must equal the serial run's exactly; on write-once
object storage the extra copies stay, so there the chunk ids stored (each once) must equal
the serial run's and the copies are counted.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow.fs as pafs
import yaml

from bingobackup.format.constants import ZERO_LOCATION
from bingobackup.mover.restore import write_disk_from_pool
from bingobackup.pools import LocalDirBlobStore, Pool, create_pool_in
from bingobackup.pools.dedup import DedupPool, describe_packs
from bingobackup.resources.pools import open_registered_pool, pool_catalog_root
from catalog import Catalog
from flows.backup import job_tag
from support.crash_harness import RESULTS_ENV, Trial, command_env, file_sha256
from support.flow import POOL_PASSPHRASE, Registered, bingobackup_command
from support.pools import store_disk
from support.sim_admin import sim_admin
from tasks.limits import delete_tag_limits
from tasks.verify import VerifySelection, verify_pool

MIB = 1 << 20
CHUNK = 4 * MIB  # the pools' default chunk size
DISK_CHUNKS = 4  # [shared, shared-per-round, own, own-per-round]
COMMAND_TIMEOUT = 600


@dataclass
class StoredFigures:
    """What a dedup pool holds, in chunk envelopes (pack headers and indexes left out: their
    number depends on how many processes wrote, not on what was deduplicated)."""

    stored_chunk_bytes: int = 0  # every envelope in every pack (live, dead, duplicate)
    unique_live_bytes: int = 0  # one envelope per chunk id some manifest names
    duplicate_copies: int = 0  # extra live locations of a chunk id (a dedup race)
    duplicate_bytes: int = 0
    dead_bytes: int = 0  # envelopes no manifest names (in packs still partly live)
    dead_packs: int = 0  # packs no manifest names at all (gc should have freed them)
    data_bytes: int = 0  # the data blobs' sizes, pack overhead included


def stored_figures(pool: Pool) -> StoredFigures:
    assert isinstance(pool, DedupPool) and pool.packs is not None, "a version-2 dedup pool"
    described = describe_packs(pool)
    figures = StoredFigures(data_bytes=sum(info.size for info in described.packs.values()))
    sizes = {}
    for key, entries in described.entries.items():
        for entry in entries:
            figures.stored_chunk_bytes += entry.length
            sizes[f"{key}@{entry.offset}"] = entry.length
    locations: dict[str, set[str]] = {}
    for set_id, volume in pool.list_manifests():
        for ref in pool.load_manifest(set_id, volume).chunks:
            if ref.location != ZERO_LOCATION:
                locations.setdefault(ref.digest, set()).add(ref.location)
    live = {location for each in locations.values() for location in each}
    for each in locations.values():
        first, *others = sorted(each)
        figures.unique_live_bytes += sizes[first]
        figures.duplicate_copies += len(others)
        figures.duplicate_bytes += sum(sizes[other] for other in others)
    figures.dead_bytes = figures.stored_chunk_bytes - sum(sizes[location] for location in live)
    live_packs = {location.rpartition("@")[0] for location in live}
    figures.dead_packs = sum(key not in live_packs for key in described.packs)
    return figures


def serial_figures(work: Path, disks: list[tuple[str, str, Path]]) -> StoredFigures:
    """The same disks backed up one after another by one writer into a fresh encrypted dedup
    pool (the engine's writer, as a backup's pipeline drives it: a known chunk is not sent)."""
    pool = create_pool_in(
        LocalDirBlobStore(work / f"serial-{uuid.uuid4().hex[:8]}", "serial"),
        "dedup",
        chunk_size=CHUNK,
        encrypted=True,
        passphrase=POOL_PASSPHRASE,
        scrypt_n=2**10,  # the key's derivation: nothing stored depends on its cost
    )
    for set_id, volume, image in disks:  # a zero chunk is not stored, as the pipeline skips it
        store_disk(pool, set_id, volume, image.read_bytes(), CHUNK, skip_zeros=True)
    return stored_figures(pool)


@dataclass
class Finished:
    """One actor's commands, run one after another."""

    codes: list[int] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(code == 0 for code in self.codes)


@dataclass
class ConcurrencyResult:
    """Figures of one scenario for the campaign's table (__main__.py, concurrency_table)."""

    writers: int = 0
    rounds: int = 0
    sets: int = 0
    seconds_concurrent: float = 0.0  # wall time of the rounds where processes ran together
    seconds_last_gc: float = 0.0
    seconds_checks: float = 0.0  # exports of every set, verify, the serial run
    duplicates_left_by_round: list[int] = field(
        default_factory=list
    )  # copies a race stored, after each round
    duplicates_dropped: int = 0  # by the gc runs (their reports)
    faults_injected: dict[int | str, int] = field(default_factory=dict)  # by the S3 fault proxy
    failure_line: str = ""  # what a run failing on purpose (an outage past its window) said
    serial: StoredFigures = field(default_factory=StoredFigures)
    before_gc: StoredFigures = field(default_factory=StoredFigures)
    after_gc: StoredFigures = field(default_factory=StoredFigures)


def record_concurrency(trial: Trial, result: ConcurrencyResult) -> None:
    """Appends the scenario to the campaign's results (crash_harness.RESULTS_ENV) as a trial
    (`killed` meaning here: the scenario ran to its end) with its figures beside."""
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(trial) | {"concurrency": asdict(result)}) + "\n")


class WritersRig:
    """One simulated cloud, one registered encrypted dedup pool (local or object), `writers`
    VMs of one 16 MiB disk each with shared content, one job per VM."""

    def __init__(
        self,
        registered: Registered,
        work: Path,
        api_url: str,
        seed: int,
        writers: int,
        vm_prefix: str = "conc-vm",
        options: dict[str, object] | None = None,
    ) -> None:
        self.registered = registered
        self.work = work
        self.rng = random.Random(seed)
        self.env = command_env(api_url, work)
        self.images = work / "images"
        self.images.mkdir(parents=True)
        shared = self.rng.randbytes(2 * CHUNK)
        self.vms: list[str] = []
        self.volume: dict[str, str] = {}  # VM -> its disk's volume id
        self.spec_files: dict[str, Path] = {}
        self.job_names: dict[str, str] = {}
        for number in range(writers):
            vm = f"{vm_prefix}-{number}"
            image = work / f"{vm}.raw"
            image.write_bytes(shared + self.rng.randbytes(2 * CHUNK))
            body = {"name": vm, "cluster": "cluster-a", "disks": [str(image)]}
            added = sim_admin(registered.sim, "POST", "vms", body)
            (volume,) = [
                v.volume_id
                for v in registered.client.describe_volumes()
                if any(a.instance_id == added["instance_id"] for a in v.attachments)
            ]
            spec = registered.spec(content=[{"vm": vm}], options={"channels": 2, **(options or {})})
            spec["name"] = f"{spec['name']}-{vm_prefix}-{number}"
            self.spec_files[vm] = work / f"job-{number}.yaml"
            self.spec_files[vm].write_text(yaml.safe_dump(spec))
            self.vms.append(vm)
            self.volume[vm] = volume
            self.job_names[vm] = spec["name"]
        self.expected: dict[tuple[str, str], str] = {}  # (set, volume) -> SHA-256 of the disk
        self.kept_images: dict[tuple[str, str], Path] = {}  # (set, volume) -> copy of the disk
        self.set_of: dict[tuple[int, str], str] = {}  # (round, VM) -> set id

    # -- the cloud -------------------------------------------------------------------------
    def change_disks(self) -> None:
        """Chunk 1: a new one every VM gets (the writers race to store it); chunk 3: its own."""
        shared = self.rng.randbytes(CHUNK)
        for vm in self.vms:
            self.registered.sim.write_volume(self.volume[vm], CHUNK, shared)
            self.registered.sim.write_volume(self.volume[vm], 3 * CHUNK, self.rng.randbytes(CHUNK))

    def leftovers(self) -> list[str]:
        client = self.registered.client
        return [s.snapshot_id for s in client.describe_snapshots()] + [
            v.volume_id for v in client.describe_volumes() if v.name.startswith("bingobackup-tmp")
        ]

    # -- commands --------------------------------------------------------------------------
    def backup_args(self, vm: str) -> list[str]:
        return ["backup", "run", str(self.spec_files[vm])]

    def export_args(self, set_id: str, volume: str, output: Path) -> list[str]:
        # A local pool by its directory; an object pool by its name (`pool list` made it known).
        pool = str(self.registered.pool_dir) if self.registered.pool_dir.is_dir() else self.registered.pool
        args = ["export-disk", "--pool", pool, "--set", set_id, "--volume", volume]
        return [*args, "--output", str(output), "--force"]

    def run(self, args: list[str]) -> tuple[int, str]:
        process = subprocess.Popen(
            bingobackup_command(*args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=COMMAND_TIMEOUT)
        finally:  # a test stopped midway leaves no process behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        return process.returncode, output.decode(errors="replace")

    def remember(self, round_number: int, before: set[str]) -> None:
        """The sets the round's backups committed, one per VM: their disks as backed up."""
        new = self.catalog_sets() - before
        by_vm = self.sets_by_vm(new)
        assert sorted(by_vm) == sorted(self.vms), f"round {round_number} committed {sorted(new)}"
        for vm, set_id in by_vm.items():
            volume = self.volume[vm]
            self.set_of[(round_number, vm)] = set_id
            copy = self.images / f"{set_id}-{volume}.raw"
            copy.write_bytes(self.registered.volume_file(volume).read_bytes())
            self.kept_images[(set_id, volume)] = copy
            self.expected[(set_id, volume)] = file_sha256(copy)

    def free_job_slots(self) -> None:
        for name in self.job_names.values():  # nothing killed: a no-op unless a run failed
            delete_tag_limits(job_tag(name))

    # -- the pool and catalog --------------------------------------------------------------
    def pool(self) -> Pool:
        from tasks.blocks import PrefectRegistryStore

        registration = PrefectRegistryStore().get_pool(self.registered.pool)
        assert registration is not None
        return open_registered_pool(registration)

    def catalog_root(self) -> tuple[str, pafs.FileSystem | None]:
        from tasks.blocks import PrefectRegistryStore

        registration = PrefectRegistryStore().get_pool(self.registered.pool)
        assert registration is not None
        return pool_catalog_root(registration)

    def catalog_sets(self) -> set[str]:
        root, filesystem = self.catalog_root()
        with Catalog([(self.registered.pool, root, filesystem)]) as cat:
            frame = cat.list_sets()
        return set(frame["set_id"]) if len(frame) else set()

    def sets_by_vm(self, sets: set[str]) -> dict[str, str]:
        """VM -> set for `sets`, from the manifests (one disk per VM, one volume per set)."""
        owner = {volume: vm for vm, volume in self.volume.items()}
        found: dict[str, str] = {}
        for set_id, volume in self.pool().list_manifests():
            if set_id in sets:
                found[owner[volume]] = set_id
        return found

    def check(self, expect_sets: set[str]) -> list[str]:
        """Every property a user relies on once the processes are done; the problems found."""
        problems = []
        sets = self.catalog_sets()
        if sets != expect_sets:
            problems.append(f"catalog lists {sorted(sets)}, expected {sorted(expect_sets)}")
        pool = self.pool()
        in_pool = {s for s, _ in pool.list_manifests()}
        if in_pool != sets:
            problems.append(f"sets with manifests {sorted(in_pool)} are not the catalog's {sorted(sets)}")
        for (set_id, volume), sha in sorted(self.expected.items()):
            if set_id not in expect_sets:
                continue  # deleted on purpose
            output = self.work / f"check-{uuid.uuid4().hex[:8]}.raw"
            try:
                write_disk_from_pool(pool, pool.load_manifest(set_id, volume), output)
                got = file_sha256(output)
            except Exception as error:  # a failed read is what we report
                got = f"unreadable: {error}"
            finally:
                output.unlink(missing_ok=True)
            if got != sha:
                problems.append(f"set {set_id} disk {volume} exports as {got[:80]}, not {sha[:12]}")
        left = self.leftovers()
        if left:
            problems.append(f"left in the cloud: {left}")
        root, filesystem = self.catalog_root()
        report = verify_pool(pool, (root, filesystem), VerifySelection(), flow_run_id=uuid.uuid4().hex)
        if not report.ok:
            problems.append(f"verify: {report.headline()} {report.damage_rows()[:3]}")
        return problems


def run_together(actors: dict[str, tuple[WritersRig, list[list[str]]]]) -> dict[str, Finished]:
    """Each actor's commands one after another (in its rig's environment), every actor at the
    same time."""
    finished = {name: Finished() for name in actors}

    def act(name: str) -> None:
        rig, commands = actors[name]
        started = time.monotonic()
        for args in commands:
            code, output = rig.run(args)
            finished[name].codes.append(code)
            finished[name].outputs.append(output)
            if code != 0:
                break
        finished[name].seconds = time.monotonic() - started

    threads = [threading.Thread(target=act, args=(name,), name=f"actor-{name}") for name in actors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return finished


DROPPED_RE = re.compile(r"duplicate chunks dropped\D+(\d+)")


class Scenario:
    """Rounds of `rig.vms` backed up at once; from the second round on, beside them, the
    first VM's previous set deleted, then `gc`, and (with `export`) the last VM's previous
    set exported. Then a last `gc` and every check; `trial` and `result` hold the verdict
    and the figures."""

    def __init__(self, rig: WritersRig, name: str, *, object_pool: bool, export: bool) -> None:
        self.rig = rig
        self.object_pool = object_pool
        self.with_export = export
        self.trial = Trial(name, "")
        self.result = ConcurrencyResult(writers=len(rig.vms))
        self.deleted: set[str] = set()
        self.export = rig.work / "export" / "disk.raw"
        self.export.parent.mkdir()
        self.exported: tuple[str, str] | None = None
        self.before: set[str] = set()

    def actors(self, round_number: int) -> dict[str, tuple[WritersRig, list[list[str]]]]:
        rig, pool = self.rig, self.rig.registered.pool
        if round_number > 1:
            rig.change_disks()
        self.before = rig.catalog_sets()
        actors = {vm: (rig, [rig.backup_args(vm)]) for vm in rig.vms}
        self.exported = None
        if round_number > 1:
            # The chunks the deleted set shares with the later sets stay; its own go.
            self.exported = (rig.set_of[(round_number - 1, rig.vms[-1])], rig.volume[rig.vms[-1]])
            victim = rig.set_of[(round_number - 1, rig.vms[0])]
            if self.with_export:
                actors[f"export {pool}"] = (rig, [rig.export_args(*self.exported, self.export)])
            else:
                self.exported = None
            actors[f"delete+gc {pool}"] = (
                rig,
                [
                    ["sets", "delete", victim, "--pool", pool, "--yes"],
                    ["gc", "--pool", pool, "--repack-threshold", "90"],
                ],
            )
            self.deleted.add(victim)
        return actors

    def round_done(self, round_number: int, finished: dict[str, Finished], seconds: float) -> None:
        trial, rig = self.trial, self.rig
        self.result.rounds = round_number
        self.result.seconds_concurrent += seconds
        for name, done in finished.items():
            if not done.ok:
                trial.problems.append(f"round {round_number}: {name} failed: {done.outputs[-1][-1500:]}")
            for output in done.outputs:
                self.result.duplicates_dropped += sum(int(n) for n in DROPPED_RE.findall(output))
        if trial.problems:
            return
        if self.exported and file_sha256(self.export) != rig.expected[self.exported]:
            trial.data_lost = True
            trial.problems.append(
                f"round {round_number}: export-disk of {self.exported[0]} wrote other bytes"
            )
        rig.remember(round_number, self.before)
        self.result.duplicates_left_by_round.append(stored_figures(rig.pool()).duplicate_copies)

    def last_gc(self) -> dict[str, tuple[WritersRig, list[list[str]]]]:
        """The last `gc`, once no other process runs on the pool: every condemned list is
        carried out, and on a local pool every pack with a dead byte is repacked (dropping
        duplicate copies)."""
        self.result.before_gc = stored_figures(self.rig.pool())
        pool = self.rig.registered.pool
        return {f"last gc {pool}": (self.rig, [["gc", "--pool", pool, "--repack-threshold", "100"]])}

    def finish(self, last_gc: Finished | None) -> None:
        """The checks, and the stored bytes against a serial run's."""
        trial, rig, result = self.trial, self.rig, self.result
        trial.point = f"{result.rounds} rounds"
        if trial.problems or last_gc is None:
            return
        started = time.monotonic()
        result.seconds_last_gc = last_gc.seconds
        if not last_gc.ok:
            trial.problems.append(f"the last gc failed: {last_gc.outputs[-1][-1500:]}")
        result.duplicates_dropped += sum(int(n) for n in DROPPED_RE.findall("".join(last_gc.outputs)))
        result.after_gc = after = stored_figures(rig.pool())
        kept = {set_id for set_id, _ in rig.expected} - self.deleted
        problems = rig.check(kept)
        trial.data_lost |= any("exports as" in problem for problem in problems)
        trial.problems += problems
        result.sets = len(kept)
        remaining = sorted((s, v, path) for (s, v), path in rig.kept_images.items() if s in kept)
        result.serial = serial = serial_figures(rig.work, remaining)
        if self.object_pool:  # write-once manifests: a race's extra copies stay while their sets live
            if after.unique_live_bytes != serial.stored_chunk_bytes:
                trial.problems.append(
                    f"the chunk ids stored hold {after.unique_live_bytes} bytes, a serial run's "
                    f"{serial.stored_chunk_bytes}"
                )
            if after.dead_packs:
                trial.problems.append(f"{after.dead_packs} packs no set uses are left after gc")
        elif (after.stored_chunk_bytes, after.duplicate_copies) != (serial.stored_chunk_bytes, 0):
            trial.problems.append(
                f"{after.stored_chunk_bytes} chunk bytes stored ({after.duplicate_copies} duplicate copies) "
                f"after gc, a serial run's {serial.stored_chunk_bytes}"
            )
        trial.killed = True  # in this campaign: the scenario ran to its end
        trial.survived = not trial.problems
        result.seconds_checks = time.monotonic() - started
        record_concurrency(trial, result)


def run_scenarios(scenarios: list[Scenario], rounds: int) -> None:
    """Every scenario's round at the same time, `rounds` times, then each finished."""
    for round_number in range(1, rounds + 1):
        actors: dict[str, tuple[WritersRig, list[list[str]]]] = {}
        for scenario in scenarios:
            actors |= scenario.actors(round_number)
        started = time.monotonic()
        finished = run_together(actors)
        seconds = time.monotonic() - started
        for scenario in scenarios:
            mine = {name: done for name, done in finished.items() if actors[name][0] is scenario.rig}
            scenario.round_done(round_number, mine, seconds)
        if any(scenario.trial.problems for scenario in scenarios):
            break
    last: dict[str, tuple[WritersRig, list[list[str]]]] = {}
    if not any(scenario.trial.problems for scenario in scenarios):
        for scenario in scenarios:
            last |= scenario.last_gc()
    gc_runs = run_together(last)
    for scenario in scenarios:
        ours = [done for name, done in gc_runs.items() if last[name][0] is scenario.rig]
        scenario.finish(ours[0] if ours else None)
