"""Tests for the content-addressed artifact store (local and memory:// backends)."""

from __future__ import annotations

import hashlib
import json
import os
import uuid

import fsspec
import pytest

from llmforge.artifacts import (
    ArtifactNotFound,
    ArtifactStore,
    DigestMismatch,
    InvalidDigest,
)


@pytest.fixture(params=["local", "file-url", "memory"])
def store(request, tmp_path):
    if request.param == "local":
        yield ArtifactStore(str(tmp_path / "store"))
    elif request.param == "file-url":
        yield ArtifactStore(f"file://{tmp_path}/store")
    else:
        root = f"memory://artifacts-test-{uuid.uuid4().hex}"
        yield ArtifactStore(root)
        fsspec.filesystem("memory").rm(root.removeprefix("memory:/"), recursive=True)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tmp_leftovers(s: ArtifactStore) -> list[str]:
    tmp = f"{s.root}/tmp"
    return s.fs.ls(tmp) if s.fs.exists(tmp) else []


def test_root_created(tmp_path):
    ArtifactStore(str(tmp_path / "a" / "b"))
    assert (tmp_path / "a" / "b").is_dir()


def test_bytes_round_trip_and_layout(store):
    data = b"hello artifacts"
    digest = store.put_bytes(data)
    assert digest == sha(data)
    hex_ = digest.split(":")[1]
    assert store.path_of(digest) == f"{store.root}/objects/sha256/{hex_[:2]}/{hex_}"
    assert store.exists(digest)
    assert store.get_bytes(digest) == data
    with store.open(digest) as fh:
        assert fh.read() == data


def test_put_bytes_idempotent(store):
    d1 = store.put_bytes(b"same")
    d2 = store.put_bytes(b"same")
    assert d1 == d2
    assert store.get_bytes(d1) == b"same"
    assert tmp_leftovers(store) == []


def test_empty_object(store):
    digest = store.put_bytes(b"")
    assert digest == sha(b"")
    assert store.get_bytes(digest) == b""


def test_file_round_trip_large(store, tmp_path):
    data = os.urandom(5 * 1024 * 1024 + 123)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    digest = store.put_file(src)
    assert digest == sha(data)
    assert store.put_file(src) == digest
    out = tmp_path / "out" / "big.bin"
    store.get_file(digest, out)
    assert out.read_bytes() == data
    assert tmp_leftovers(store) == []
    assert [p.name for p in out.parent.iterdir()] == ["big.bin"]


def test_dir_round_trip(store, tmp_path):
    src = tmp_path / "ckpt"
    (src / "sub" / "deep").mkdir(parents=True)
    (src / "weights.bin").write_bytes(b"\x00" * 1000)
    (src / "sub" / "config.json").write_text('{"a": 1}')
    (src / "sub" / "deep" / "dup.bin").write_bytes(b"\x00" * 1000)
    digest = store.put_dir(src)

    manifest = json.loads(store.get_bytes(digest))
    assert manifest["kind"] == "directory"
    assert list(manifest["files"]) == ["sub/config.json", "sub/deep/dup.bin", "weights.bin"]
    assert manifest["files"]["weights.bin"] == sha(b"\x00" * 1000)
    assert all(store.exists(d) for d in manifest["files"].values())
    assert store.put_dir(src) == digest  # deterministic manifest

    dest = tmp_path / "restored"
    store.get_dir(digest, dest)
    assert (dest / "weights.bin").read_bytes() == b"\x00" * 1000
    assert (dest / "sub" / "config.json").read_text() == '{"a": 1}'
    assert (dest / "sub" / "deep" / "dup.bin").read_bytes() == b"\x00" * 1000


def test_put_dir_symlinks(store, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    src = tmp_path / "d"
    src.mkdir()
    (src / "real.txt").write_text("real")
    (src / "inner_link.txt").symlink_to(src / "real.txt")
    manifest = json.loads(store.get_bytes(store.put_dir(src)))
    assert manifest["files"]["inner_link.txt"] == sha(b"real")

    (src / "escape.txt").symlink_to(outside)
    with pytest.raises(ValueError, match="outside"):
        store.put_dir(src)
    (src / "escape.txt").unlink()
    (src / "loop").symlink_to(src)
    with pytest.raises(ValueError, match="cycle"):
        store.put_dir(src)


@pytest.mark.parametrize(
    "bad",
    [
        "../../etc/passwd",
        "sha256:../x",
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "md5:" + "a" * 64,
        "sha256:" + "a" * 64 + "\n",
        "/etc/passwd",
        "",
        None,
    ],
)
def test_hostile_digests_rejected(store, tmp_path, bad):
    for call in (
        store.path_of,
        store.exists,
        store.get_bytes,
        store.open,
        store.delete,
        lambda d: store.get_file(d, tmp_path / "x"),
        lambda d: store.get_dir(d, tmp_path / "y"),
    ):
        with pytest.raises(InvalidDigest):
            call(bad)
    assert issubclass(InvalidDigest, ValueError)


def test_missing_object(store, tmp_path):
    missing = "sha256:" + "0" * 64
    assert not store.exists(missing)
    for call in (
        store.get_bytes,
        store.open,
        store.delete,
        lambda d: store.get_file(d, tmp_path / "x"),
        lambda d: store.get_dir(d, tmp_path / "y"),
    ):
        with pytest.raises(ArtifactNotFound, match=missing) as info:
            call(missing)
        assert isinstance(info.value, KeyError) and isinstance(info.value, LookupError)
    assert not (tmp_path / "x").exists()


def test_delete(store):
    digest = store.put_bytes(b"bye")
    store.delete(digest)
    assert not store.exists(digest)
    with pytest.raises(ArtifactNotFound):
        store.get_bytes(digest)


@pytest.mark.parametrize(
    "rel",
    ["../evil.txt", "a/../../evil.txt", "/tmp/evil.txt", "a/./b", "", "a\\..\\evil", "a//b"],
)
def test_hostile_manifest_rejected(store, tmp_path, rel):
    good = store.put_bytes(b"payload")
    manifest = {"files": {"ok.txt": good, rel: good}, "kind": "directory"}
    digest = store.put_bytes(json.dumps(manifest).encode())
    dest = tmp_path / "dest" / "inner"
    with pytest.raises(ValueError, match="manifest"):
        store.get_dir(digest, dest)
    # Validation happens before any write: nothing at all was materialised.
    assert not (tmp_path / "dest").exists() or not any((tmp_path / "dest").rglob("*.txt"))
    assert not (tmp_path / "evil.txt").exists()


def test_manifest_with_bad_file_digest_rejected(store, tmp_path):
    manifest = {"files": {"a.txt": "sha256:../../x"}, "kind": "directory"}
    digest = store.put_bytes(json.dumps(manifest).encode())
    with pytest.raises(InvalidDigest):
        store.get_dir(digest, tmp_path / "d")


def test_get_dir_on_non_manifest(store, tmp_path):
    for payload in (b"\xff\xfe binary", b'{"kind": "file"}', b"[1, 2]"):
        with pytest.raises(ValueError, match="not a directory manifest"):
            store.get_dir(store.put_bytes(payload), tmp_path / "d")


def _exploding_chunks():
    yield b"a" * 1000
    yield b"b" * 1000
    raise OSError("disk on fire")


class _ExplodingReader:
    def __init__(self):
        self.calls = 0

    def read(self, n=-1):
        self.calls += 1
        if self.calls > 2:
            raise OSError("network dropped")
        return b"x" * 100


@pytest.mark.parametrize("source", [_exploding_chunks, _ExplodingReader])
def test_failed_write_leaves_nothing(store, source):
    with pytest.raises(OSError):
        store.put_stream(source())
    assert tmp_leftovers(store) == []
    objects = f"{store.root}/objects"
    assert not store.fs.exists(objects) or store.fs.find(objects) == []


def test_put_file_missing_path(store, tmp_path):
    with pytest.raises(FileNotFoundError):
        store.put_file(tmp_path / "gone.bin")
    assert tmp_leftovers(store) == []


def test_digest_mismatch_nothing_visible(store):
    promised = sha(b"what was promised")
    with pytest.raises(DigestMismatch):
        store.put_stream([b"something else"], expected=promised)
    assert not store.exists(promised)
    assert not store.exists(sha(b"something else"))
    assert tmp_leftovers(store) == []


def test_put_stream_matches_expected(store):
    chunks = [b"part1-", b"part2-", b"part3"]
    digest = store.put_stream(iter(chunks), expected=sha(b"".join(chunks)))
    assert store.get_bytes(digest) == b"".join(chunks)


def test_corrupt_object_detected_on_get_file(tmp_path):
    store = ArtifactStore(str(tmp_path / "s"))
    digest = store.put_bytes(b"original")
    with open(store.path_of(digest), "wb") as fh:
        fh.write(b"tampered")
    dest = tmp_path / "out.bin"
    with pytest.raises(DigestMismatch):
        store.get_file(digest, dest)
    assert not dest.exists()
    assert list(tmp_path.glob(".out.bin*")) == []
