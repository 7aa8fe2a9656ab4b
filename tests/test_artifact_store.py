"""The artifact store: atomic writes, sha256 recorded at write and verified at read,
locally and in S3 (moto in server mode on 127.0.0.1)."""
from __future__ import annotations

import json
import uuid

import boto3
import pytest

from resources.artifact_store import ArtifactNotFound, IntegrityError, S3ArtifactStore


def _tree(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.bin").write_bytes(bytes(range(256)) * 100)
    (src / "sub" / "b.txt").write_text("hello")
    return src


def test_local_round_trip_and_manifest(tmp_path, artifact_store):
    src = _tree(tmp_path)
    manifest = artifact_store.put_dir("m/v1", src)
    assert set(manifest["files"]) == {"a.bin", "sub/b.txt"}
    assert manifest["total_bytes"] == 25600 + 5
    out = artifact_store.get_dir("m/v1")
    assert (out / "a.bin").read_bytes() == (src / "a.bin").read_bytes()
    assert (out / "sub" / "b.txt").read_text() == "hello"
    artifact_store.put_json("x/obj.json", {"k": 1})
    assert artifact_store.get_json("x/obj.json") == {"k": 1}


def test_local_corruption_is_detected(tmp_path, artifact_store):
    artifact_store.put_dir("m/v1", _tree(tmp_path))
    victim = artifact_store._path("m/v1/a.bin")
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"a\.bin.*corrupted"):
        artifact_store.get_dir("m/v1")
    with pytest.raises(IntegrityError, match="corrupted"):
        artifact_store.get_bytes("m/v1/a.bin")


def test_incomplete_directory_is_not_trusted(tmp_path, artifact_store):
    artifact_store.put_dir("m/v1", _tree(tmp_path))
    artifact_store._path("m/v1/MANIFEST.json").unlink()  # as if the writer died before committing
    assert not artifact_store.has_dir("m/v1")
    with pytest.raises(ArtifactNotFound, match="MANIFEST"):
        artifact_store.get_dir("m/v1")


def test_object_without_recorded_hash_reads_as_missing(artifact_store):
    artifact_store.put_bytes("k/obj", b"data")
    artifact_store._path("k/obj.sha256").unlink()  # torn write: data landed, record did not
    assert not artifact_store.exists("k/obj")
    with pytest.raises(ArtifactNotFound):
        artifact_store.get_bytes("k/obj")


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/", "a//b"])
def test_keys_cannot_escape_the_store(artifact_store, key):
    with pytest.raises(ValueError, match="clean relative path"):
        artifact_store.put_bytes(key, b"x")


def test_s3_round_trip_and_corruption(tmp_path, moto_s3):
    bucket = f"llmops-{uuid.uuid4().hex[:8]}"
    store = S3ArtifactStore(bucket=bucket, endpoint_url=moto_s3, cache_dir=str(tmp_path / "cache"))
    src = _tree(tmp_path)
    manifest = store.put_dir("models/v1", src)
    assert store.has_dir("models/v1")
    assert store.uri("models/v1") == f"s3://{bucket}/llmops/models/v1"
    out = store.get_dir("models/v1")
    assert out.is_relative_to(tmp_path / "cache")
    assert (out / "a.bin").read_bytes() == (src / "a.bin").read_bytes()
    assert store.get_manifest("models/v1")["digest"] == manifest["digest"]
    # The cache carries the manifest, so the engine verifies S3-backed models at load time too.
    from llm_assets.core.engine import MANIFEST_FILE

    assert json.loads((out / MANIFEST_FILE).read_text())["files"] == manifest["files"]

    # Corrupt the object in the bucket behind the store's back, keeping its recorded sha256.
    client = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    key = "llmops/models/v1/sub/b.txt"
    recorded = client.head_object(Bucket=bucket, Key=key)["Metadata"]["sha256"]
    client.put_object(Bucket=bucket, Key=key, Body=b"HELLO", Metadata={"sha256": recorded})
    with pytest.raises(IntegrityError, match="corrupted"):
        store.get_bytes("models/v1/sub/b.txt")
    # A fresh cache downloads the corrupted file and the manifest check catches it.
    fresh = S3ArtifactStore(bucket=bucket, endpoint_url=moto_s3, cache_dir=str(tmp_path / "cache2"))
    with pytest.raises(IntegrityError, match=r"b\.txt.*corrupted"):
        fresh.get_dir("models/v1")


def test_s3_missing_object(tmp_path, moto_s3):
    store = S3ArtifactStore(bucket=f"llmops-{uuid.uuid4().hex[:8]}", endpoint_url=moto_s3,
                            cache_dir=str(tmp_path / "c"))
    store.put_bytes("one", b"1")
    assert not store.exists("two")
    with pytest.raises(ArtifactNotFound):
        store.get_bytes("two")
