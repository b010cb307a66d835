"""An object pool as its operator sees it: `pool stats` figures checked against the bucket."""

from __future__ import annotations

from typing import Any

from support.pools import CHUNK, make_disk, write_disk
from support.s3 import moto_client, new_bucket, s3_settings

from bingobackup.resources.models import PoolRegistration, User
from bingobackup.resources.pools import create_registered_pool, open_registered_pool, registered_pool_stats
from bingobackup.resources.store import InMemoryRegistryStore


def bucket_bytes(client: Any, registration: PoolRegistration) -> dict[str, int]:
    assert registration.s3 is not None
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=registration.s3.bucket, Prefix=registration.s3.prefix + "/"
    )
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


def test_pool_stats_of_an_object_pool_count_logical_and_stored_bytes_as_the_bucket_holds_them(
    moto_s3: str,
) -> None:
    registration = create_registered_pool(
        InMemoryRegistryStore(), User(name="root", role="admin"), name="obj-stats", kind="object",
        s3=s3_settings(moto_s3, new_bucket(moto_s3)), chunk_size=CHUNK, compression="fast",
    )  # fmt: skip
    assert registered_pool_stats(registration).sets == 0
    disk = make_disk()  # random | text | zeros | the random chunk again | random | a third of one
    pool = open_registered_pool(registration)
    write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)

    first = registered_pool_stats(registration)
    in_bucket = bucket_bytes(moto_client(moto_s3), registration)
    assert (first.sets, first.disks) == (1, 1)
    assert first.logical_bytes == 4 * CHUNK + CHUNK // 3  # the zero chunk is stored as nothing
    assert first.stored_bytes == sum(in_bucket.values())  # every object: chunks, manifest, config
    assert first.free_bytes is None  # S3 reports no limit
    assert first.reduction is not None and first.reduction > 1  # the repeat and the text saved bytes

    write_disk(pool.open_disk_writer("set-2", "vol-a", len(disk.data)), disk)  # the same disk again
    second = registered_pool_stats(registration)
    added = set(bucket_bytes(moto_client(moto_s3), registration)) - set(in_bucket)
    assert (second.sets, second.disks, second.logical_bytes) == (2, 2, 2 * first.logical_bytes)
    assert added == {"pools/p1/manifests/set-2/vol-a.json"}  # every chunk deduplicated
    manifest_size = bucket_bytes(moto_client(moto_s3), registration)["pools/p1/manifests/set-2/vol-a.json"]
    assert second.stored_bytes == first.stored_bytes + manifest_size
