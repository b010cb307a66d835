"""The verification code an operator types before a restore creates anything (guide 6.2 step 7).

The code is derived from the spec: the same spec always shows the same code, any change to
it (another VM, another subnet) shows a new one, so typing it confirms *this* restore. It
guards against restoring the wrong thing by accident, not against an attacker.
"""

from __future__ import annotations

import hashlib
import hmac

from bingobackup.specs.restore import RestoreSpec

# No 0/O, 1/I/L: the code is read off a screen and typed by hand.
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6


def verification_code(spec: RestoreSpec) -> str:
    digest = hashlib.sha256(b"bingobackup-restore-code:" + spec.model_dump_json().encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    letters = []
    for _ in range(CODE_LENGTH):
        number, index = divmod(number, len(_ALPHABET))
        letters.append(_ALPHABET[index])
    return "".join(letters)


def code_matches(spec: RestoreSpec, typed: str | None) -> bool:
    """Whether `typed` is the spec's code (case and surrounding spaces ignored)."""
    if not typed:
        return False
    return hmac.compare_digest(typed.strip().upper().encode(), verification_code(spec).encode())
