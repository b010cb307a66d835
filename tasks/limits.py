"""Prefect tag concurrency limits, set from a job's options at the start of each run."""

from __future__ import annotations

from prefect.client.orchestration import get_client

PAGE = 200


def apply_tag_limits(limits: dict[str, int]) -> None:
    """Create or change the tag limits that differ from what the server holds.

    Why read first: every run of a job asks for the same limits, and each creation is a write
    transaction on the server while the run is starting; one paged read usually finds them
    all in place already.
    """
    with get_client(sync_client=True) as client:
        current: dict[str, int] = {}
        offset = 0
        while True:
            page = client.read_concurrency_limits(limit=PAGE, offset=offset)
            current.update((limit.tag, limit.concurrency_limit) for limit in page)
            if len(page) < PAGE:
                break
            offset += PAGE
        for tag, limit in limits.items():
            if current.get(tag) != limit:
                client.create_concurrency_limit(tag=tag, concurrency_limit=limit)
