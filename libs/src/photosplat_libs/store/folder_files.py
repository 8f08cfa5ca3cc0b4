"""The folder store's storage operations: blocking file IO on its layout, run in a thread by
:class:`photosplat_libs.store.folder.FolderStore`.

Layout under the root::

    <key>                the object's bytes
    .meta/<key>.json     its content type and MD5 etag (as S3 keeps them)
    .tmp/                writes in progress

Every write goes to ``.tmp`` first and is moved into place with :func:`os.replace`, so neither a
reader nor a crash ever sees half an object. The key rules (:mod:`.naming`) forbid segments that
start with ``.``, so no key reaches ``.meta`` or ``.tmp`` and none escapes the root.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from photosplat_libs.store.naming import check_key
from photosplat_libs.store.port import ObjectInfo, ObjectNotFound

# Files are copied in, and put_stream hands a body to the writer thread, in slices this big.
FLUSH_BYTES = 1024 * 1024
# Temp files older than this are leftovers of a crash; younger ones may be a write in progress.
STALE_TEMP_SECONDS = 3600
DEFAULT_TYPE = "application/octet-stream"


@contextmanager
def not_found(key: str) -> Iterator[None]:
    try:
        yield
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
        raise ObjectNotFound(key) from e


class TempObject:
    """A file in ``.tmp`` being written, hashing as it goes."""

    def __init__(self, tmp_dir: Path) -> None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, suffix=".part")
        self.path = Path(name)
        self.file: BinaryIO = os.fdopen(fd, "wb")
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.md5.update(chunk)
        self.size += len(chunk)

    def finish(self) -> None:
        # fsync before the rename: otherwise a power cut can leave an empty file under the new name.
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


class FolderFiles:
    """The objects of one root folder, as files (see the module's layout)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._meta = root / ".meta"
        self._tmp = root / ".tmp"

    def path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _meta_path(self, key: str) -> Path:
        path = self._meta.joinpath(*key.split("/"))
        return path.with_name(path.name + ".json")

    def temp(self) -> TempObject:
        return TempObject(self._tmp)

    def ensure_ready(self) -> None:
        for folder in (self.root, self._meta, self._tmp):
            folder.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - STALE_TEMP_SECONDS
        for leftover in self._tmp.iterdir():
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink(missing_ok=True)

    def write(self, key: str, chunks: Iterable[bytes], content_type: str) -> ObjectInfo:
        tmp = self.temp()
        try:
            for chunk in chunks:
                tmp.write(chunk)
            return self.commit(tmp, key, content_type)
        except BaseException:
            tmp.discard()
            raise

    def write_from_file(self, key: str, path: str, content_type: str) -> None:
        with open(path, "rb") as source:
            self.write(key, iter(lambda: source.read(FLUSH_BYTES), b""), content_type)

    def commit(self, tmp: TempObject, key: str, content_type: str) -> ObjectInfo:
        tmp.finish()
        target, meta = self.path(key), self._meta_path(key)
        # The old metadata goes first: a crash before the new one is written leaves an object
        # whose etag is derived from its file, never the previous object's etag.
        meta.unlink(missing_ok=True)
        self._replace(tmp.path, target, key)
        info = ObjectInfo(key=key, size=tmp.size, content_type=content_type, etag=tmp.md5.hexdigest())
        self._write_meta(meta, info)
        return info

    def _write_meta(self, meta: Path, info: ObjectInfo) -> None:
        meta_tmp = self.temp()
        try:
            meta_tmp.write(json.dumps({"content_type": info.content_type, "etag": info.etag}).encode())
            meta_tmp.file.close()
            self._replace(meta_tmp.path, meta, info.key)
        except BaseException:
            meta_tmp.discard()
            raise

    @staticmethod
    def _replace(source: Path, target: Path, key: str) -> None:
        # A concurrent delete may prune the parent folder between mkdir and replace: try again.
        for attempt in range(3):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise
            except (FileExistsError, NotADirectoryError, IsADirectoryError) as e:
                raise ValueError(
                    f"key {key!r} clashes with another object: the folder store cannot hold both 'a' and 'a/b'"
                ) from e

    def info(self, key: str, *, with_type: bool = True) -> ObjectInfo:
        path = self.path(key)
        with not_found(key):
            st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ObjectNotFound(key)  # a folder of other keys
        meta = self._read_meta(key)
        etag = meta.get("etag") or f"{st.st_size:x}-{st.st_mtime_ns:x}"
        content_type = ""
        if with_type:
            content_type = meta.get("content_type") or mimetypes.guess_type(key)[0] or DEFAULT_TYPE
        return ObjectInfo(key=key, size=st.st_size, content_type=content_type, etag=etag)

    def _read_meta(self, key: str) -> dict[str, str]:
        try:
            return json.loads(self._meta_path(key).read_bytes())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return {}

    def list_prefix(self, prefix: str) -> list[ObjectInfo]:
        base_key, _, partial = prefix.rpartition("/")
        base = self.root.joinpath(*base_key.split("/")) if base_key else self.root
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(base):
            at_base = dirpath == str(base)
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and (not at_base or d.startswith(partial))]
            relative = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = name if relative == "." else f"{relative}/{name}"
                if name.startswith(".") or not key.startswith(prefix):
                    continue
                try:
                    found.append(self.info(key, with_type=False))
                except ObjectNotFound:
                    continue  # deleted while we walked
        return sorted(found, key=lambda info: info.key)

    def delete(self, key: str) -> None:
        path, meta = self.path(key), self._meta_path(key)
        meta.unlink(missing_ok=True)
        try:
            path.unlink(missing_ok=True)
        except (IsADirectoryError, NotADirectoryError):
            return  # a "folder" of other keys, or under an object: no object by this key
        self._prune(path.parent, self.root)
        self._prune(meta.parent, self._meta)

    def delete_prefix(self, prefix: str) -> int:
        infos = self.list_prefix(prefix)
        for info in infos:
            self.delete(info.key)
        return len(infos)

    @staticmethod
    def _prune(folder: Path, stop: Path) -> None:
        """Remove ``folder`` and its parents up to ``stop`` (excluded) while they are empty."""
        while folder != stop and folder.is_relative_to(stop):
            try:
                folder.rmdir()
            except OSError:
                return  # not empty (or already gone with a concurrent delete)
            folder = folder.parent

    def copy_out(self, key: str, dest: Path) -> None:
        source = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
        try:
            with not_found(key):
                shutil.copyfile(source, name)
            os.replace(name, dest)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
