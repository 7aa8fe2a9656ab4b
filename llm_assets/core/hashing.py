"""Content hashes: what the artifact store records at write time and checks at read time."""
from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_of_files(file_hashes: dict[str, str]) -> str:
    """One digest for a set of files: sha256 over the sorted `name:sha256` lines.

    Stable under file order and independent of where the files live, so the same
    weights give the same digest on a laptop and in S3.
    """
    lines = "".join(f"{name}:{file_hashes[name]}\n" for name in sorted(file_hashes))
    return hashlib.sha256(lines.encode()).hexdigest()
