"""Analyst queries over the views: dedup, throughput, growth, success rate.

Plain SQL so a notebook can copy, change and run them with `Catalog.query`.
"""

from __future__ import annotations

# Per set: how much the chunk store saved. `dedup_ratio` compares the non-zero data of the set
# with the stored size of its distinct chunks; `reduction_ratio` compares the disks' size with
# what the set newly added to the pool (zeros skipped, dedup against earlier sets, compression).
DEDUP_RATIO_BY_SET = """
WITH refs AS (
    SELECT pool, set_id, sum(length) AS data_bytes, sum(stored_size) AS referenced_stored_bytes,
           count(*) AS chunk_refs
    FROM chunks GROUP BY pool, set_id
), uniq AS (
    SELECT pool, set_id, sum(stored_size) AS unique_stored_bytes, count(*) AS unique_chunks
    FROM (SELECT pool, set_id, digest, any_value(stored_size) AS stored_size
          FROM chunks GROUP BY pool, set_id, digest)
    GROUP BY pool, set_id
)
SELECT s.pool, s.set_id, s.job_name, s.started_at, s.logical_bytes,
       coalesce(r.data_bytes, 0) AS data_bytes,
       coalesce(r.chunk_refs, 0) AS chunk_refs,
       coalesce(u.unique_chunks, 0) AS unique_chunks,
       coalesce(r.referenced_stored_bytes, 0) AS referenced_stored_bytes,
       coalesce(u.unique_stored_bytes, 0) AS unique_stored_bytes,
       s.bytes_stored AS new_stored_bytes,
       r.data_bytes / nullif(u.unique_stored_bytes, 0) AS dedup_ratio,
       s.logical_bytes / nullif(s.bytes_stored, 0) AS reduction_ratio
FROM backup_sets s
LEFT JOIN refs r ON r.pool = s.pool AND r.set_id = s.set_id
LEFT JOIN uniq u ON u.pool = s.pool AND u.set_id = s.set_id
ORDER BY s.started_at, s.set_id
"""

THROUGHPUT_BY_RUN = """
SELECT pool, run_id, job_name, kind, status, started_at, ended_at,
       epoch(ended_at - started_at) AS seconds,
       bytes_read, bytes_sent, bytes_stored, vms_ok, vms_failed, vms_skipped,
       bytes_read / 1048576.0 / nullif(epoch(ended_at - started_at), 0) AS read_mib_per_s,
       bytes_sent / 1048576.0 / nullif(epoch(ended_at - started_at), 0) AS sent_mib_per_s
FROM job_runs
ORDER BY started_at, run_id
"""

# Per VM and set: its disks' size and non-zero data, and how the data grew since its previous set.
GROWTH_BY_VM = """
WITH per_vm AS (
    SELECT s.pool, v.vm_id, v.vm_name, s.set_id, s.started_at,
           sum(d.size_bytes) AS logical_bytes, sum(d.data_bytes) AS data_bytes,
           sum(d.bytes_stored) AS new_stored_bytes
    FROM backup_sets s
    JOIN vm_backups v ON v.pool = s.pool AND v.set_id = s.set_id AND v.status = 'ok'
    JOIN disk_backups d ON d.pool = s.pool AND d.set_id = s.set_id AND d.vm_id = v.vm_id
    GROUP BY s.pool, v.vm_id, v.vm_name, s.set_id, s.started_at
)
SELECT *,
       data_bytes - lag(data_bytes) OVER (PARTITION BY pool, vm_id ORDER BY started_at, set_id)
           AS data_growth_bytes
FROM per_vm
ORDER BY pool, vm_id, started_at, set_id
"""

SUCCESS_RATE_BY_JOB = """
SELECT pool, job_name, count(*) AS runs,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'partial') AS partial,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'completed') / count(*) AS success_rate
FROM job_runs
WHERE status <> 'running'
GROUP BY pool, job_name
ORDER BY pool, job_name
"""

# Tape and optical pools: which cartridge or disc holds which disk of which set. A chunk's
# location on removable media is `tape:<barcode>:<file>:<offset>` or
# `optical:<label>:<file>:<offset>` (docs/format.md), so the media are read off the chunks.
MEDIA_CONTENTS = """
SELECT pool, split_part(location, ':', 1) AS medium_kind, split_part(location, ':', 2) AS medium,
       set_id, volume_id, count(*) AS chunks, sum(stored_size) AS stored_bytes,
       min(TRY_CAST(split_part(location, ':', 3) AS INTEGER)) AS first_file
FROM chunks
WHERE location LIKE 'tape:%' OR location LIKE 'optical:%'
GROUP BY ALL
ORDER BY pool, medium, set_id, volume_id
"""

# What prune and `sets delete` removed: one row per tombstone (docs/lifecycle.md), newest first.
REMOVED_SETS = """
SELECT pool, set_id, job_name, started_at, deleted_at, reason, rule, deleted_by, data_removed,
       logical_bytes, bytes_stored
FROM set_deletions
ORDER BY deleted_at DESC, pool, set_id
"""
