"""`pool scan` after the pool home is lost: rebuild what the home held from the media alone.

A tape or optical pool's home keeps config.json (the passphrase-wrapped key), the manifests
and the catalog; an optical home also keeps optical.json and a record per closed disc. Every
medium file carries the pool's config (stream.py, record P) and every disc its optical
settings (DISC.JSN), so these functions write the missing home files back first; the scans
(`scan_library`, `scan_discs`) then restore the manifests and return the catalog copies.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bingobackup.format.constants import OPTICAL_FILE
from bingobackup.media.discs import DiscSet, OpticalSettings, describe_file, read_disc_info
from bingobackup.media.tapelib import TapeLibrary
from bingobackup.pools.stream import recover_config
from bingobackup.storage.errors import PoolError
from bingobackup.storage.localdir import LocalDirBlobStore

# Enough of a file's start to hold its header and pool config records.
HEAD_BYTES = 64 << 10


def recover_tape_home(home: Path, library: TapeLibrary) -> list[str]:
    """Writes the home's config.json back from the first cartridge file that carries one when
    it is missing; returns the home files written."""
    store = LocalDirBlobStore(Path(home), Path(home).name)
    media = library.cartridges()
    heads = (medium.read_head(n, HEAD_BYTES) for medium in media for n in range(medium.files))
    written = recover_config(store, heads, f"the cartridges of library {library.root}")
    return ["config.json"] if written else []


def recover_optical_home(home: Path, pool_name: str, image_dirs: list[Path]) -> list[str]:
    """Writes back the home's optical.json (from a disc's DISC.JSN), config.json (from a stream
    file) and the records of closed discs found in `image_dirs` or `<home>/images`; returns
    the home files written."""
    home = Path(home)
    written = []
    if not (home / OPTICAL_FILE).is_file():
        _recover_settings(home, pool_name, [home / "images", *image_dirs])
        written.append(OPTICAL_FILE)
    discs = DiscSet(home, image_dirs)
    heads = (
        discs.read_head(label, number, HEAD_BYTES)
        for label in discs.labels()
        for number in discs.file_numbers(label)
    )
    if recover_config(LocalDirBlobStore(home, pool_name), heads, f"the discs in {_searched(discs)}"):
        written.append("config.json")
    records = _recover_disc_records(discs)
    if records:
        written.append(f"{records} disc record(s)")
    return written


def _recover_settings(home: Path, pool_name: str, image_dirs: list[Path]) -> None:
    prefix = OpticalSettings.prefix_for(pool_name)
    images = sorted(p for d in image_dirs for p in d.glob(f"{prefix}*.iso"))
    if not images:
        raise PoolError(
            f"the home of optical pool {pool_name} ({home}) has no {OPTICAL_FILE} and no disc image "
            f"{prefix}NNNN.iso is in {', '.join(str(d) for d in image_dirs)}; pass the directory of "
            "the pool's disc images with --images and scan again"
        )
    info = read_disc_info(images[0])
    if "settings" not in info:
        raise PoolError(
            f"disc image {images[0]} predates optical settings on discs; recreate {home / OPTICAL_FILE} "
            "with `bingobackup pool create --kind optical` options of the lost pool, then scan"
        )
    settings = OpticalSettings.model_validate(info["settings"])
    if not Path(settings.output_dir).is_dir():  # the old output was lost with the home
        settings = settings.model_copy(update={"output_dir": str(images[0].parent)})
    DiscSet.create(home, settings)


def _recover_disc_records(discs: DiscSet) -> int:
    """Records of the closed discs whose images are here but whose record is not: the next
    blank disc is numbered after them, so no label is used twice."""
    known = {record.label for record in discs.closed()}
    written = 0
    for label in discs.labels():
        image = discs.image_of(label)
        if image is None or label in known:
            continue
        files = [
            describe_file(n, discs.read_head(label, n, 4096), discs.file_size(label, n))
            for n in discs.file_numbers(label)
        ]
        discs.record_closed(label, image, files, datetime.fromtimestamp(image.stat().st_mtime, UTC))
        written += 1
    return written


def _searched(discs: DiscSet) -> str:
    return ", ".join(str(d) for d in discs.image_dirs)
