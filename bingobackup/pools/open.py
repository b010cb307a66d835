"""Creating and opening pools from a directory (the config decides the kind and the keys)."""

from __future__ import annotations

from pathlib import Path

from bingobackup.format.compression import CompressionSetting
from bingobackup.format.config import DEFAULT_CHUNK_SIZE, PoolConfig, PoolKind, check_chunk_size
from bingobackup.format.constants import CONFIG_NAME, FORMAT_VERSION
from bingobackup.format.crypto import (
    DEFAULT_SCRYPT_N,
    CipherId,
    PoolKeys,
    new_master_key,
    unwrap_master_key,
    wrap_master_key,
)
from bingobackup.format.digest import ChunkDigester, DigestId
from bingobackup.format.envelope import EnvelopeCodec
from bingobackup.format.errors import FormatError, PassphraseRequiredError
from bingobackup.pools.dedup import DedupPool
from bingobackup.pools.pool import Pool
from bingobackup.pools.standard import StandardPool
from bingobackup.storage.base import BlobStore
from bingobackup.storage.errors import BlobNotFoundError, PoolError, PoolExistsError, PoolNotFoundError
from bingobackup.storage.localdir import LocalDirBlobStore

POOL_KINDS: dict[str, type[Pool]] = {"dedup": DedupPool, "standard": StandardPool}


def create_pool(
    path: Path | str,
    kind: PoolKind,
    *,
    name: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    encrypted: bool = False,
    passphrase: str | None = None,
    compression: CompressionSetting = "fast",
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> Pool:
    """Makes a new pool in `path` (created if missing; must hold no pool yet) and opens it."""
    root = Path(path)
    store = LocalDirBlobStore(root, name or root.name)
    return create_pool_in(
        store,
        kind,
        chunk_size=chunk_size,
        encrypted=encrypted,
        passphrase=passphrase,
        compression=compression,
        scrypt_n=scrypt_n,
    )


def create_pool_in(
    store: BlobStore,
    kind: PoolKind,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    encrypted: bool = False,
    passphrase: str | None = None,
    compression: CompressionSetting = "fast",
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> Pool:
    """As `create_pool`, on any blob store (tests pass a fault-injecting one)."""
    if kind not in POOL_KINDS:
        raise ValueError(f"pool kind {kind!r} is not available yet; choose one of {', '.join(POOL_KINDS)}")
    check_chunk_size(chunk_size)
    if store.exists(CONFIG_NAME):
        raise PoolExistsError(
            f"{store.name} already holds a pool; open it instead, or choose an empty directory"
        )
    if encrypted and not passphrase:
        raise ValueError("an encrypted pool needs a passphrase")
    if passphrase and not encrypted:
        raise ValueError("a passphrase was given for an unencrypted pool; pass encrypted=True to encrypt it")
    fields: dict[str, object] = {
        "name": store.name,
        "kind": kind,
        "chunk_size": chunk_size,
        "compression": compression,
        "digest": DigestId.BLAKE3_KEYED if encrypted else DigestId.BLAKE3,
        "cipher": CipherId.AES_256_GCM if encrypted else CipherId.NONE,
    }
    config = PoolConfig.model_validate(fields)
    master_key = None
    if encrypted:
        assert passphrase is not None
        master_key = new_master_key()
        config = config.model_copy(
            update={
                "key": wrap_master_key(
                    master_key, passphrase, config.pool_id, config.format_version, scrypt_n
                )
            }
        )
    store.put(CONFIG_NAME, config.to_json())
    return _assemble(store, config, master_key)


def read_config(store: BlobStore) -> PoolConfig:
    try:
        data = store.get(CONFIG_NAME)
    except BlobNotFoundError:
        raise PoolNotFoundError(
            f"{store.name} is not a bingobackup pool (it has no {CONFIG_NAME}); check the path, or "
            "create a pool there with `bingobackup pool create`"
        ) from None
    return PoolConfig.from_json(data, f"{store.name}/{CONFIG_NAME}")


def open_pool(path: Path | str, passphrase: str | None = None, *, name: str | None = None) -> Pool:
    """Opens the pool in `path`. An encrypted pool checks the passphrase before anything else is
    read or written (WrongPassphraseError / PassphraseRequiredError)."""
    root = Path(path)
    if not root.is_dir():
        raise PoolNotFoundError(
            f"pool directory {root} does not exist; check the path or mount the pool's storage"
        )
    return open_pool_in(LocalDirBlobStore(root, name or root.name), passphrase)


def open_pool_in(store: BlobStore, passphrase: str | None = None) -> Pool:
    config = read_config(store)
    return _assemble(store, config, _master_key(store, config, passphrase))


def _master_key(store: BlobStore, config: PoolConfig, passphrase: str | None) -> bytes | None:
    if config.key is None:
        if passphrase:
            # Whoever can write the pool's storage could put a plain config.json in place of the
            # encrypted one: the backups written next would be readable by them.
            raise FormatError(
                f"pool {store.name} was opened with a passphrase, but its config.json says it is not "
                "encrypted. Nothing was read or written. If the pool was created encrypted, its "
                "config.json was replaced by a plain one (backups written now would not be "
                "encrypted): restore config.json from a copy of the pool and check who can write to "
                "its storage; if the pool is not encrypted, open it without a passphrase (unset "
                "BINGOBACKUP_POOL_PASSPHRASE)"
            )
        return None
    if not passphrase:
        raise PassphraseRequiredError(store.name)
    return unwrap_master_key(config.key, passphrase, config.pool_id, store.name, config.format_version)


def _assemble(store: BlobStore, config: PoolConfig, master_key: bytes | None) -> Pool:
    if master_key is None:
        codec = EnvelopeCodec(ChunkDigester(config.digest), config.compression, None)
    else:
        keys = PoolKeys(master_key)
        codec = EnvelopeCodec(
            ChunkDigester(config.digest, keys.chunk_id_key),
            config.compression,
            keys.chunk_aead,
            keys.manifest_seal_key,
        )
    return POOL_KINDS[config.kind](store, config, codec)


def change_passphrase(path: Path | str, old: str, new: str) -> None:
    """Rewraps the master key under `new`; no chunk is rewritten. Wrong `old` changes nothing."""
    store = LocalDirBlobStore(Path(path), Path(path).name)
    config = read_config(store)
    if config.key is None:
        raise ValueError(f"pool {store.name} is not encrypted; it has no passphrase to change")
    master_key = _master_key(store, config, old)
    assert master_key is not None  # the config holds a wrapped key
    rewrapped = wrap_master_key(
        master_key,
        new,
        config.pool_id,
        config.format_version,
        config.key.kdf.n if config.key else DEFAULT_SCRYPT_N,
    )
    store.put(CONFIG_NAME, config.model_copy(update={"key": rewrapped}).to_json())


def upgrade_pool(store: BlobStore, passphrase: str | None = None) -> tuple[int, int]:
    """Moves the pool in `store` to this bingobackup's format version: (the version it had,
    manifests sealed). Every manifest without a seal gets one (as it stands: the upgrade vouches
    for what the manifests say now), then config.json says the new version, its key rewrapped
    for it; a crash before that leaves the old version, and running it again finishes the job.
    Write-once storage (an object pool) cannot replace config.json and is refused."""
    config = read_config(store)
    if config.format_version >= FORMAT_VERSION:
        return config.format_version, 0
    if not store.replaces_blobs:
        raise PoolError(
            f"pool {store.name} is on write-once storage, where config.json and the manifests cannot "
            f"be replaced, so it stays at format version {config.format_version}: readable, its "
            "manifests not sealed. For sealed manifests, create a new pool and back up into it"
        )
    master_key = _master_key(store, config, passphrase)
    pool = _assemble(store, config, master_key)
    pool.check_config_fits()  # never seal a pool's manifests under another pool's key
    sealed = 0
    for set_id, volume_id in list(pool.list_manifests()):
        key = pool.manifest_key(set_id, volume_id)
        manifest, has_seal = pool.open_manifest(store.get(key), f"{store.name}:{key}")
        if not has_seal:
            pool.save_manifest(manifest)
            sealed += 1
    update: dict[str, object] = {"format_version": FORMAT_VERSION}
    if master_key is not None and config.key is not None:
        assert passphrase is not None  # _master_key asked for it
        update["key"] = wrap_master_key(
            master_key, passphrase, config.pool_id, FORMAT_VERSION, config.key.kdf.n
        )
    store.put(CONFIG_NAME, config.model_copy(update=update).to_json())
    return config.format_version, sealed
