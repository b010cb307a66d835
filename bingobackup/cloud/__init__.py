"""Client of BingoCloud's EC2-style Query API (see docs/cloud-api.md)."""

from __future__ import annotations

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.errors import (
    CloudAuthError,
    CloudClockError,
    CloudError,
    CloudInvalidRequest,
    CloudNotFoundError,
    CloudResponseError,
    CloudRetryableError,
    CloudUnreachableError,
    CloudWaitTimeout,
    error_from_response,
)
from bingobackup.cloud.waiters import wait_for_instance, wait_for_snapshot, wait_for_volume

__all__ = [
    "BingoCloudClient",
    "CloudAuthError",
    "CloudClockError",
    "CloudError",
    "CloudInvalidRequest",
    "CloudNotFoundError",
    "CloudResponseError",
    "CloudRetryableError",
    "CloudUnreachableError",
    "CloudWaitTimeout",
    "error_from_response",
    "wait_for_instance",
    "wait_for_snapshot",
    "wait_for_volume",
]
