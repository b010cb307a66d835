"""Errors of resource management: each says what is wrong and what to do next.

None of them ever carries a secret: messages are built from names, addresses and
BingoCloud error codes only.
"""

from __future__ import annotations

from bingobackup.errors import BingoBackupError


class ResourceError(BingoBackupError):
    """Base of every refusal raised by `bingobackup.resources`."""


class AccessDenied(ResourceError):
    """The user may not do this (wrong role, or the resource is not authorized to its groups)."""


class RegistrationError(ResourceError):
    """A cloud or backup host could not be registered or its settings changed."""


class CloudInUse(RegistrationError):
    """Deregistering (or renaming) a cloud that jobs still use."""

    def __init__(self, message: str, jobs: list[str]) -> None:
        self.jobs = jobs
        super().__init__(message)


class IncompatibleBackupHost(RegistrationError):
    """The instance's OS or architecture is not on the backup-host compatibility list."""


class ResourceNotFound(ResourceError):
    """A named cloud, backup host, user, cluster, node or VM does not exist."""


class SelectionError(ResourceError):
    """A job's content selection names something that cannot be backed up."""


class UnknownSelection(SelectionError, ResourceNotFound):
    """A job's content names a cluster, node, VM or disk the cloud does not have."""
