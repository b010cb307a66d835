"""Garbage collection as a Prefect task: a thin wrapper around `bingobackup.lifecycle.gc`."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from bingobackup.lifecycle.gc import GcReport, collect_garbage
from bingobackup.resources.pools import find_pool, open_registered_pool
from tasks.blocks import PrefectRegistryStore


@task(name="collect-garbage", cache_policy=NONE)
def collect_pool_garbage(pool: str, *, repack: bool, repack_threshold: float, dry_run: bool) -> GcReport:
    """Opens the registered pool and collects its garbage (safe while backups run)."""
    opened = open_registered_pool(find_pool(PrefectRegistryStore(), pool))
    return collect_garbage(opened, repack=repack, repack_threshold=repack_threshold, dry_run=dry_run)
