"""restic and borg on the same image in the same run, when they are installed.

Both run with settings comparable to our pool's: encrypted repository, zstd level 1 where the
tool lets us choose (restic 0.14 picks its own "auto" level, zstd's fastest). Caches and
repositories live in the benchmark's temporary directory.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from benchmarks.measure import directory_bytes, retire, run_command

PASSWORD = "benchmark repository password"


class ExternalTool:
    """One backup program driven through three steps: first backup, second backup, restore."""

    name = ""
    version_command: tuple[str, ...] = ()

    def __init__(self, work: Path) -> None:
        self.work = work / self.name
        self.repo = self.work / "repo"
        self.work.mkdir(parents=True)

    @classmethod
    def available(cls) -> bool:
        return shutil.which(cls.name) is not None

    def version(self) -> str:
        return str(run_command(list(self.version_command))["stdout"]).strip().splitlines()[0]

    def init(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """An empty repository again (the first backup is measured more than once)."""
        retire(self.work)
        self.work.mkdir(parents=True)
        self.init()

    def backup(self, image: Path, label: str) -> dict[str, Any]:
        raise NotImplementedError

    def restore(self, image: Path, label: str) -> tuple[dict[str, Any], Path]:
        """Measured restore of the snapshot `label`; returns the measurement and the restored file."""
        raise NotImplementedError

    def stored_bytes(self) -> int:
        return directory_bytes(self.repo)


class Restic(ExternalTool):
    name = "restic"
    version_command = ("restic", "version")

    def _env(self) -> dict[str, str]:
        return {
            "RESTIC_PASSWORD": PASSWORD,
            "RESTIC_REPOSITORY": str(self.repo),
            "RESTIC_CACHE_DIR": str(self.work / "cache"),
        }

    def init(self) -> None:
        run_command(["restic", "init"], self._env())

    def backup(self, image: Path, label: str) -> dict[str, Any]:
        return run_command(["restic", "backup", "--quiet", "--tag", label, str(image)], self._env())

    def check_read_data(self) -> dict[str, Any]:
        """`restic check --read-data`: every pack of the repository read and verified."""
        return run_command(["restic", "check", "--read-data"], self._env())

    def restore(self, image: Path, label: str) -> tuple[dict[str, Any], Path]:
        target = self.work / "restore"
        measured = run_command(
            ["restic", "restore", "latest", "--tag", label, "--target", str(target)], self._env()
        )
        return measured, target / str(image).lstrip("/")


class Borg(ExternalTool):
    name = "borg"
    version_command = ("borg", "--version")

    def _env(self) -> dict[str, str]:
        return {"BORG_PASSPHRASE": PASSWORD, "BORG_BASE_DIR": str(self.work / "base")}

    def init(self) -> None:
        run_command(["borg", "init", "--encryption=repokey-blake2", str(self.repo)], self._env())

    def backup(self, image: Path, label: str) -> dict[str, Any]:
        return run_command(
            ["borg", "create", "--compression", "zstd,1", f"{self.repo}::{label}", str(image)],
            self._env(),
        )

    def restore(self, image: Path, label: str) -> tuple[dict[str, Any], Path]:
        target = self.work / "restore"
        target.mkdir(exist_ok=True)
        measured = run_command(
            ["borg", "extract", "--sparse", f"{self.repo}::{label}"], self._env(), cwd=target
        )
        return measured, target / str(image).lstrip("/")


TOOLS: tuple[type[ExternalTool], ...] = (Restic, Borg)
