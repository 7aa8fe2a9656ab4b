"""The artifact store: one interface, a local directory (default) and S3 (boto3).

Every object is written atomically with its sha256 recorded at write time (a
sidecar file locally, object metadata in S3) and verified at read time, so a
torn write or bit rot is an error that names the object instead of a model that
loads garbage. A directory is stored file by file and committed by writing its
`MANIFEST.json` last: a prefix without a manifest was never completely written
and is never trusted.
"""

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from llm_assets.core.hashing import IntegrityError, digest_of_files, sha256_bytes, sha256_file, verify_files
from llm_assets.core.settings import default_artifact_root, llmops_home

MANIFEST = "MANIFEST.json"


class ArtifactNotFound(FileNotFoundError):
    """No (completely written) object at that key."""


def _clean_key(key: str) -> str:
    key = key.strip("/")
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"artifact key {key!r} is not a clean relative path (no empty, '.' or '..' parts)")
    return key


class ArtifactStore(dg.ConfigurableResource):
    """Where models, manifests and reports live. Subclasses implement five primitives."""

    # ---- primitives -------------------------------------------------------
    def _write_file(self, key: str, src: Path, sha256: str) -> None:
        raise NotImplementedError

    def _read_file(self, key: str, dest: Path) -> str:
        """Copy the object to `dest`; return the sha256 recorded at write time."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def uri(self, key: str) -> str:
        raise NotImplementedError

    def _local_dir(self, prefix: str) -> Path | None:
        """The directory holding `prefix` if it is already on this machine's disk."""
        return None

    def _cache_root(self) -> Path:
        raise NotImplementedError

    # ---- files and bytes --------------------------------------------------
    def put_file(self, key: str, path: str | Path) -> str:
        key = _clean_key(key)
        digest = sha256_file(path)
        self._write_file(key, Path(path), digest)
        return digest

    def put_bytes(self, key: str, data: bytes) -> str:
        with tempfile.NamedTemporaryFile(delete=False) as tmp:
            tmp.write(data)
        try:
            return self.put_file(key, tmp.name)
        finally:
            os.unlink(tmp.name)

    def get_bytes(self, key: str) -> bytes:
        key = _clean_key(key)
        with tempfile.TemporaryDirectory() as d:
            dest = Path(d) / "obj"
            recorded = self._read_file(key, dest)
            data = dest.read_bytes()
        actual = sha256_bytes(data)
        if actual != recorded:
            raise IntegrityError(
                f"artifact {self.uri(key)} is corrupted: sha256 {actual[:12]}… != {recorded[:12]}… "
                f"recorded at write time; re-materialize the asset that wrote it"
            )
        return data

    def put_json(self, key: str, obj: Any) -> str:
        return self.put_bytes(key, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    # ---- directories ------------------------------------------------------
    def has_dir(self, prefix: str) -> bool:
        return self.exists(f"{_clean_key(prefix)}/{MANIFEST}")

    def put_dir(self, prefix: str, local_dir: str | Path, extra: dict | None = None) -> dict:
        """Store every file under `local_dir`; the manifest goes last and commits the directory."""
        prefix = _clean_key(prefix)
        root = Path(local_dir)
        files: dict[str, dict] = {}
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            if rel == MANIFEST:
                continue
            files[rel] = {"bytes": path.stat().st_size, "sha256": self.put_file(f"{prefix}/{rel}", path)}
        manifest = {
            "files": files,
            "total_bytes": sum(f["bytes"] for f in files.values()),
            "digest": digest_of_files({k: v["sha256"] for k, v in files.items()}),
            **(extra or {}),
        }
        self.put_json(f"{prefix}/{MANIFEST}", manifest)
        return manifest

    def get_manifest(self, prefix: str) -> dict:
        prefix = _clean_key(prefix)
        if not self.has_dir(prefix):
            raise ArtifactNotFound(
                f"no complete artifact at {self.uri(prefix)} (no {MANIFEST}); materialize the asset that writes it"
            )
        return self.get_json(f"{prefix}/{MANIFEST}")

    def get_dir(self, prefix: str, verify: bool = True) -> Path:
        """A local directory with the files of `prefix`, each checked against the manifest."""
        prefix = _clean_key(prefix)
        manifest = self.get_manifest(prefix)
        local = self._local_dir(prefix)
        if local is None:
            local = self._cache_root() / prefix
            stamp = local / ".complete"
            if not (stamp.exists() and stamp.read_text() == manifest["digest"]):
                if local.exists():
                    shutil.rmtree(local)
                for rel in manifest["files"]:
                    self._read_file(f"{prefix}/{rel}", local / rel)
                # The same layout as a local store: the engine (and every worker started later from
                # this cache) verifies the files against this manifest at load time.
                (local / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
                stamp.write_text(manifest["digest"])
        if verify:
            verify_files(local, {rel: meta["sha256"] for rel, meta in manifest["files"].items()}, self.uri(prefix))
        return local


def _atomic_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


class LocalArtifactStore(ArtifactStore):
    """Artifacts in a local directory; the sha256 of `key` sits in `key.sha256`."""

    root: str = Field(default=default_artifact_root(), description="Directory that holds the artifacts.")

    def _path(self, key: str) -> Path:
        return Path(self.root).resolve() / key

    def _write_file(self, key: str, src: Path, sha256: str) -> None:
        dest = self._path(key)
        sidecar = dest.with_name(dest.name + ".sha256")
        # Data first, then the record: a crash in between leaves an object without
        # a record, which reads as missing, never as trusted.
        sidecar.unlink(missing_ok=True)
        _atomic_copy(src, dest)
        tmp = sidecar.with_name(sidecar.name + f".tmp-{uuid.uuid4().hex[:8]}")
        tmp.write_text(sha256)
        os.replace(tmp, sidecar)

    def _read_file(self, key: str, dest: Path) -> str:
        path = self._path(key)
        sidecar = path.with_name(path.name + ".sha256")
        if not (path.is_file() and sidecar.is_file()):
            raise ArtifactNotFound(f"no artifact at {self.uri(key)}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        return sidecar.read_text().strip()

    def exists(self, key: str) -> bool:
        path = self._path(_clean_key(key))
        return path.is_file() and path.with_name(path.name + ".sha256").is_file()

    def uri(self, key: str) -> str:
        return self._path(_clean_key(key)).as_uri()

    def _local_dir(self, prefix: str) -> Path | None:
        return self._path(prefix)


class S3ArtifactStore(ArtifactStore):
    """Artifacts in an S3 bucket through boto3; the sha256 rides in object metadata (one put)."""

    bucket: str = Field(description="Bucket name; created on first use if it does not exist.")
    prefix: str = Field(default="llmops", description="Key prefix inside the bucket.")
    endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (moto, MinIO); None for AWS.")
    region_name: str = Field(default="us-east-1", description="AWS region.")
    cache_dir: str = Field(
        default=str(llmops_home() / "cache" / "s3"),
        description="Local directory where downloaded directories (models) are cached and verified.",
    )

    def _client(self):
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region_name)
        return client

    def _ensure_bucket(self, client) -> None:
        try:
            client.head_bucket(Bucket=self.bucket)
        except client.exceptions.ClientError:
            client.create_bucket(Bucket=self.bucket)

    def _key(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/{key}" if self.prefix.strip("/") else key

    def _write_file(self, key: str, src: Path, sha256: str) -> None:
        client = self._client()
        self._ensure_bucket(client)
        # upload_file switches to multipart for big files; S3 only shows the object once complete.
        client.upload_file(str(src), self.bucket, self._key(key), ExtraArgs={"Metadata": {"sha256": sha256}})

    def _read_file(self, key: str, dest: Path) -> str:
        client = self._client()
        try:
            head = client.head_object(Bucket=self.bucket, Key=self._key(key))
        except client.exceptions.ClientError as exc:
            raise ArtifactNotFound(f"no artifact at {self.uri(key)}: {exc}") from exc
        recorded = head.get("Metadata", {}).get("sha256")
        if not recorded:
            raise IntegrityError(f"artifact {self.uri(key)} has no sha256 metadata; it was not written by llmops")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        client.download_file(self.bucket, self._key(key), str(tmp))
        os.replace(tmp, dest)
        return recorded

    def exists(self, key: str) -> bool:
        client = self._client()
        try:
            client.head_object(Bucket=self.bucket, Key=self._key(_clean_key(key)))
            return True
        except client.exceptions.ClientError:
            return False

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(_clean_key(key))}"

    def _cache_root(self) -> Path:
        return Path(self.cache_dir) / self.bucket / self.prefix.strip("/")
