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


class IntegrityError(RuntimeError):
    """Bytes on disk do not match the sha256 recorded when they were written."""


def verify_files(root: str | Path, files: dict[str, str], where: str | None = None) -> None:
    """Check every `relative path -> sha256` under `root`; raise IntegrityError naming the first bad file."""
    root = Path(root)
    for rel, expected in files.items():
        path = root / rel
        label = f"{where or root}/{rel}"
        if not path.is_file():
            raise IntegrityError(f"{label} is missing; re-materialize the asset that wrote it")
        actual = sha256_file(path)
        if actual != expected:
            raise IntegrityError(
                f"{label} is corrupted: sha256 {actual[:12]}… != {expected[:12]}… recorded at write time; "
                f"re-materialize the asset that wrote it"
            )
