"""Small records kept as Prefect variables: state that must outlive the process (and host)
that wrote it and be read by whichever host acts next (the ledgers of `tasks/power.py` and
`tasks/restore_ledger.py`). The server stores each write in its database before answering;
operators see the records in the UI (Variables) under their tags.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import VariableCreate, VariableUpdate
from prefect.client.schemas.objects import Variable
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from tasks.paging import read_all


def variable_name(prefix: str, *parts: str) -> str:
    """Readable in the UI, and unique per `parts`: names allow only [a-z0-9_-], so the hash
    tells apart parts that differ only in case or punctuation."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", "-".join(parts).lower())[:200]
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]
    return f"{prefix}-{slug}-{digest}"


def save_variable(name: str, value: Any, tags: list[str]) -> None:
    with get_client(sync_client=True) as client:
        try:
            client.create_variable(VariableCreate(name=name, value=value, tags=tags))
        except ObjectAlreadyExists:
            client.update_variable(VariableUpdate(name=name, value=value, tags=tags))


def delete_variable(name: str) -> None:
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
        client.delete_variable_by_name(name)


def variables_tagged(tag: str) -> list[Variable]:
    with get_client(sync_client=True) as client:
        return list(
            read_all(
                lambda offset, limit: Variable.model_validate_list(
                    client.request(
                        "POST",
                        "/variables/filter",
                        json={"variables": {"tags": {"all_": [tag]}}, "offset": offset, "limit": limit},
                    ).json()
                )
            )
        )
