"""Content-addressed store for the bytes the platform produces and consumes.

Dataset shards, checkpoints and FAISS indexes are large, immutable and shared
between jobs, so they live here rather than in the database. Every object is
named by the SHA-256 of its content (``"sha256:<hex>"``), which makes writes
idempotent, deduplicates identical data and lets any reader verify what it got.

Layout under the store root (any fsspec URL: a local path, ``file://``,
``memory://``, ``s3://``...)::

    objects/sha256/<first 2 hex>/<full hex>   immutable objects
    tmp/<uuid>                                 in-flight writes

Writes go to ``tmp/`` and are moved into place only once complete and hashed,
so a reader never sees a half-written object. A directory is stored as one
object per file plus a JSON manifest written last: if a manifest exists, every
file it names exists too. This module depends on no other llmforge module.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

CHUNK_SIZE = 1024 * 1024
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


class ArtifactError(Exception):
    """Base class for artifact store errors."""


class InvalidDigest(ArtifactError, ValueError):
    """A digest string is malformed; raised before it can be used as a path."""


class ArtifactNotFound(ArtifactError, KeyError):
    """No object with this digest is in the store."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class DigestMismatch(ArtifactError, ValueError):
    """Content does not hash to the digest that was promised or stored."""


def _hex_of(digest: str) -> str:
    """Validate ``digest`` and return its hex part.

    Strict validation is the store's path-traversal defence: only 64 lowercase
    hex characters ever reach a filesystem path.
    """
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise InvalidDigest(f"invalid digest {digest!r}: expected 'sha256:<64 hex>'")
    return digest[len("sha256:"):]


def _chunks(source: IO[bytes] | Iterable[bytes]) -> Iterable[bytes]:
    """Yield byte chunks from a binary file object or an iterable of bytes."""
    if hasattr(source, "read"):
        while chunk := source.read(CHUNK_SIZE):  # type: ignore[union-attr]
            yield chunk
    else:
        yield from source  # type: ignore[misc]


class ArtifactStore:
    """Immutable, content-addressed object store on top of fsspec."""

    def __init__(self, url: str) -> None:
        """Open (creating if missing) the store rooted at ``url``.

        Args:
            url: A local path or any fsspec URL (``file://``, ``memory://``,
                ``s3://bucket/prefix``...).
        """
        self.url = url
        self.fs, root = url_to_fs(url)
        self.root = root.rstrip("/") or "/"
        self._local = isinstance(self.fs, LocalFileSystem)
        self.fs.makedirs(self.root, exist_ok=True)

    def path_of(self, digest: str) -> str:
        """Return the fsspec path where ``digest`` is (or would be) stored."""
        hex_ = _hex_of(digest)
        return f"{self.root}/objects/sha256/{hex_[:2]}/{hex_}"

    def exists(self, digest: str) -> bool:
        """Return whether the object is present (raises on a malformed digest)."""
        return bool(self.fs.exists(self.path_of(digest)))

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` and return its digest; a no-op if already present."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return digest
        return self.put_stream([data], expected=digest)

    def put_file(self, path: str | os.PathLike[str]) -> str:
        """Store a local file, streaming it in chunks so size is unbounded."""
        with open(path, "rb") as fh:
            return self.put_stream(fh)

    def put_stream(self, source: IO[bytes] | Iterable[bytes], expected: str | None = None) -> str:
        """Store bytes from a binary file object or iterable of chunks.

        The data is hashed while it is written to ``tmp/`` and only moved into
        ``objects/`` when complete, so a failure part-way (or a hash that does
        not match ``expected``) leaves nothing visible and no tmp file behind.

        Args:
            source: Binary file object or iterable of ``bytes`` chunks.
            expected: Digest the caller promises; ``DigestMismatch`` otherwise.

        Returns:
            The digest ``"sha256:<hex>"`` of the content.
        """
        if expected is not None:
            _hex_of(expected)
        self.fs.makedirs(f"{self.root}/tmp", exist_ok=True)
        tmp = f"{self.root}/tmp/{uuid.uuid4().hex}"
        try:
            hasher = hashlib.sha256()
            with self.fs.open(tmp, "wb") as out:
                for chunk in _chunks(source):
                    hasher.update(chunk)
                    out.write(chunk)
            digest = "sha256:" + hasher.hexdigest()
            if expected is not None and digest != expected:
                raise DigestMismatch(f"content hashes to {digest}, expected {expected}")
            final = self.path_of(digest)
            if self.fs.exists(final):
                return digest  # same content already stored; tmp removed below
            self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            if self._local:
                os.replace(tmp, final)  # atomic rename on one filesystem
            else:
                self.fs.mv(tmp, final)
            return digest
        finally:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)

    def open(self, digest: str) -> IO[bytes]:
        """Open an object for binary reading (caller closes it)."""
        try:
            return self.fs.open(self.path_of(digest), "rb")
        except FileNotFoundError:
            raise ArtifactNotFound(f"artifact {digest} not found in {self.url}") from None

    def get_bytes(self, digest: str) -> bytes:
        """Return an object's full content (use ``open`` for large objects)."""
        with self.open(digest) as fh:
            return fh.read()

    def get_file(self, digest: str, dest_path: str | os.PathLike[str]) -> None:
        """Copy an object to a local file, verifying its hash on the way.

        The copy goes to a sibling temp file and is renamed into place, so
        ``dest_path`` is either absent or complete and verified.
        """
        dest = Path(dest_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            hasher = hashlib.sha256()
            with self.open(digest) as src, open(part, "wb") as out:
                for chunk in _chunks(src):
                    hasher.update(chunk)
                    out.write(chunk)
            if "sha256:" + hasher.hexdigest() != digest:
                raise DigestMismatch(f"stored object {digest} is corrupt")
            os.replace(part, dest)
        finally:
            part.unlink(missing_ok=True)

    def put_dir(self, path: str | os.PathLike[str]) -> str:
        """Store a directory tree and return the digest of its manifest.

        Symlinks are followed only if they resolve inside ``path`` (one
        pointing outside would leak unrelated files into the artifact). Empty
        directories are not recorded. The manifest is written last so its
        existence guarantees all files it names are present.
        """
        base = Path(path).resolve(strict=True)
        files: dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(base, followlinks=True):
            for name in dirnames + filenames:
                entry = Path(dirpath) / name
                if not entry.is_symlink():
                    continue
                if not entry.resolve().is_relative_to(base):
                    raise ValueError(f"symlink {entry} points outside {base}")
                if name in dirnames and Path(dirpath).resolve().is_relative_to(entry.resolve()):
                    raise ValueError(f"symlink {entry} creates a directory cycle")
            for name in filenames:
                entry = Path(dirpath) / name
                files[entry.relative_to(base).as_posix()] = self.put_file(entry)
        manifest = {"files": files, "kind": "directory"}
        return self.put_bytes(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())

    def get_dir(self, digest: str, dest_dir: str | os.PathLike[str]) -> None:
        """Materialise a directory from its manifest into ``dest_dir``.

        Every entry is validated before anything is written, so a hostile
        manifest (absolute paths, ``..``, bad digests) cannot write outside
        ``dest_dir`` or leave a partial tree behind.
        """
        raw = self.get_bytes(digest)
        try:
            manifest = json.loads(raw)
            files = manifest["files"] if manifest["kind"] == "directory" else None
        except (UnicodeDecodeError, ValueError, LookupError, TypeError):
            files = None
        if not isinstance(files, dict):
            raise ValueError(f"artifact {digest} is not a directory manifest")
        dest = Path(dest_dir).resolve()
        plan: list[tuple[Path, str]] = []
        for rel, file_digest in files.items():
            parts = rel.split("/")
            if "\\" in rel or any(part in ("..", ".", "") for part in parts):
                raise ValueError(f"unsafe path {rel!r} in manifest {digest}")
            target = dest.joinpath(*parts)
            if not target.resolve().is_relative_to(dest):
                raise ValueError(f"path {rel!r} in manifest {digest} escapes {dest}")
            _hex_of(file_digest)
            plan.append((target, file_digest))
        for target, file_digest in plan:
            self.get_file(file_digest, target)

    def delete(self, digest: str) -> None:
        """Remove an object; raises ``ArtifactNotFound`` if absent.

        Deleting a file that a stored manifest still names breaks that
        manifest, so callers (e.g. garbage collection) must check references.
        """
        path = self.path_of(digest)
        if not self.fs.exists(path):
            raise ArtifactNotFound(f"artifact {digest} not found in {self.url}")
        self.fs.rm(path)
