"""Pool encryption keys: a random master key wrapped under a passphrase.

- The master key is 32 random bytes made when the pool is created. It never changes, so a
  passphrase change only rewraps it (nothing else in the pool is rewritten).
- The passphrase (UTF-8, NFC-normalised) goes through scrypt into a key-encryption key, which
  wraps the master key with AES-256-GCM; the pool id is the associated data, so a wrapped key
  copied into another pool's config does not open.
- Subkeys come from the master key by HKDF-SHA256 with distinct `info` labels: one keys the
  chunk ids (keyed BLAKE3), one encrypts chunks (AES-256-GCM), one seals the disk manifests
  (keyed BLAKE3, format version 3). A key is never used for two jobs.
- From format version 3 on, the wrap's associated data also says "version 3 or later", so a
  config.json edited back to an older version (to skip the manifest seals) no longer opens.

Cipher identifiers (recorded in the config and in every chunk envelope, never reused):
0 none, 1 AES-256-GCM.
"""

from __future__ import annotations

import base64
import hmac
import os
import threading
import unicodedata
from collections import OrderedDict
from concurrent.futures import Future
from enum import IntEnum
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from pydantic import BaseModel, ConfigDict, Field

from bingobackup.format.constants import CHUNK_AEAD_INFO as _CHUNK_AEAD_INFO
from bingobackup.format.constants import CHUNK_ID_INFO as _CHUNK_ID_INFO
from bingobackup.format.constants import MANIFEST_SEAL_INFO as _MANIFEST_SEAL_INFO
from bingobackup.format.constants import SEALED_FORMAT
from bingobackup.format.constants import WRAP_LABEL as _WRAP_LABEL
from bingobackup.format.constants import WRAP_LABEL_SEALED as _WRAP_LABEL_SEALED
from bingobackup.format.errors import FormatError, UnsupportedFormatError, WrongPassphraseError

KEY_BYTES = 32
NONCE_BYTES = 12
# ~80 ms and 32 MiB per open on a current core: cheap for an operator, dear for guessing.
DEFAULT_SCRYPT_N = 2**15


class CipherId(IntEnum):
    NONE = 0
    AES_256_GCM = 1


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


class ScryptParams(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: Literal["scrypt"] = "scrypt"
    n: int = Field(default=DEFAULT_SCRYPT_N, ge=2**10, description="CPU/memory cost, a power of two")
    r: int = Field(default=8, ge=1)
    p: int = Field(default=1, ge=1)
    salt: str = Field(description="base64, 16 random bytes")


class WrappedKey(BaseModel):
    """The master key encrypted under the passphrase-derived key (AES-256-GCM)."""

    model_config = ConfigDict(frozen=True)

    kdf: ScryptParams
    nonce: str = Field(description="base64, 12 bytes")
    ciphertext: str = Field(description="base64, the 32-byte key plus the 16-byte tag")


class PoolKeys:
    """Subkeys of one pool's master key. Never printed."""

    __slots__ = ("chunk_aead", "chunk_id_key", "manifest_seal_key")

    def __init__(self, master_key: bytes) -> None:
        self.chunk_id_key = _hkdf(master_key, _CHUNK_ID_INFO)
        self.chunk_aead = AESGCM(_hkdf(master_key, _CHUNK_AEAD_INFO))
        self.manifest_seal_key = _hkdf(master_key, _MANIFEST_SEAL_INFO)

    def __repr__(self) -> str:
        return "PoolKeys(<hidden>)"


def _hkdf(master_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(master_key)


# A backup run unlocks its pool twice in one process: the command's check starts it in the
# background while the run is being created, then the run's resolve step opens the pool. The
# second waits for the first instead of paying scrypt again (its cost is the point of it).
# Kept per process, a few entries, keyed by the KDF parameters and a keyed digest of the
# passphrase (never the passphrase itself).
_KEK_MEMO_SIZE = 8
_kek_memo: OrderedDict[tuple[ScryptParams, bytes], Future[AESGCM]] = OrderedDict()
_kek_memo_lock = threading.Lock()
_KEK_MEMO_KEY = os.urandom(32)


def _kek(passphrase: str, params: ScryptParams) -> AESGCM:
    if params.n & (params.n - 1):
        raise UnsupportedFormatError(f"scrypt n={params.n} in the pool config is not a power of two")
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    memo_key = (params, hmac.digest(_KEK_MEMO_KEY, secret, "sha256"))
    with _kek_memo_lock:
        derived = _kek_memo.get(memo_key)
        deriving = derived is None
        if derived is None:
            derived = _kek_memo[memo_key] = Future()
            while len(_kek_memo) > _KEK_MEMO_SIZE:
                _kek_memo.popitem(last=False)
        _kek_memo.move_to_end(memo_key)
    if deriving:
        try:
            scrypt = Scrypt(salt=b64decode(params.salt), length=KEY_BYTES, n=params.n, r=params.r, p=params.p)
            derived.set_result(AESGCM(scrypt.derive(secret)))
        except BaseException as exc:
            with _kek_memo_lock:
                _kek_memo.pop(memo_key, None)
            derived.set_exception(exc)
    return derived.result()


def _wrap_aad(pool_id: str, format_version: int) -> bytes:
    label = _WRAP_LABEL_SEALED if format_version >= SEALED_FORMAT else _WRAP_LABEL
    return label + pool_id.encode("utf-8")


def new_master_key() -> bytes:
    return os.urandom(KEY_BYTES)


def wrap_master_key(
    master_key: bytes, passphrase: str, pool_id: str, format_version: int, scrypt_n: int = DEFAULT_SCRYPT_N
) -> WrappedKey:
    if not passphrase:
        raise ValueError("an encrypted pool needs a non-empty passphrase")
    params = ScryptParams(n=scrypt_n, salt=b64encode(os.urandom(16)))
    nonce = os.urandom(NONCE_BYTES)
    sealed = _kek(passphrase, params).encrypt(nonce, master_key, _wrap_aad(pool_id, format_version))
    return WrappedKey(kdf=params, nonce=b64encode(nonce), ciphertext=b64encode(sealed))


def unwrap_master_key(
    wrapped: WrappedKey, passphrase: str, pool_id: str, pool_name: str, format_version: int
) -> bytes:
    """The master key; raises WrongPassphraseError (naming `pool_name`) when it does not open,
    and FormatError when it opens only as the key of a later format (a rolled-back config)."""
    kek = _kek(passphrase, wrapped.kdf)
    nonce, ciphertext = b64decode(wrapped.nonce), b64decode(wrapped.ciphertext)
    try:
        master_key = kek.decrypt(nonce, ciphertext, _wrap_aad(pool_id, format_version))
    except InvalidTag:
        if format_version < SEALED_FORMAT:
            try:
                kek.decrypt(nonce, ciphertext, _wrap_aad(pool_id, SEALED_FORMAT))
            except InvalidTag:
                pass
            else:
                raise FormatError(
                    f"the config.json of pool {pool_name} says format version {format_version}, but its "
                    f"key was wrapped by format version {SEALED_FORMAT} or later: the file was edited back "
                    "(which would skip the manifest seals). Nothing was read or written; restore "
                    "config.json from a copy of the pool"
                ) from None
        raise WrongPassphraseError(pool_name) from None
    if len(master_key) != KEY_BYTES:
        raise WrongPassphraseError(pool_name)
    return master_key
