"""EC2-shaped API errors the simulator answers with (codes and statuses of docs/cloud-api.md)."""

from __future__ import annotations

from bingobackup.errors import BingoBackupError


class SimApiError(Exception):
    """One `Response/Errors/Error`; `status` is the HTTP status sent with it."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    @property
    def error_no(self) -> int:
        return 404 if self.code.endswith(".NotFound") else self.status


_NOT_FOUND = {
    "instance": ("InvalidInstanceID.NotFound", "instance"),
    "volume": ("InvalidVolume.NotFound", "volume"),
    "snapshot": ("InvalidSnapshot.NotFound", "snapshot"),
    "image": ("InvalidAMIID.NotFound", "image"),
    "subnet": ("InvalidSubnetID.NotFound", "subnet"),
    "vpc": ("InvalidVpcID.NotFound", "VPC"),
    "group": ("InvalidGroup.NotFound", "security group"),
    "cluster": ("InvalidCluster.NotFound", "cluster"),
    "node": ("InvalidNode.NotFound", "node"),
    "storage": ("InvalidStorage.NotFound", "storage"),
}


def not_found(kind: str, resource_id: str) -> SimApiError:
    code, noun = _NOT_FOUND[kind]
    return SimApiError(code, f"The {noun} '{resource_id}' does not exist.")


def invalid(name: str, value: str, why: str) -> SimApiError:
    return SimApiError("InvalidParameterValue", f"Value ({value}) for parameter {name} is invalid: {why}")


def incorrect_state(message: str) -> SimApiError:
    return SimApiError("IncorrectState", message)


class SimulatorError(BingoBackupError):
    """An operator-facing problem with the simulator itself (state directory, add-vm input)."""
