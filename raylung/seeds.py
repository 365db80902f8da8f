"""Seeds from names: the same text gives the same seed in every process, run and machine
(Python's own ``hash`` of a string is salted per process)."""

from __future__ import annotations

import hashlib


def text_seed(text: str) -> int:
    """The first 8 bytes of sha256(``text``) as a little-endian integer, for numpy's RNGs.

    >>> text_seed("phantom_0001")
    14119944272495417001
    """
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
