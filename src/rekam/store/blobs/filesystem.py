"""FilesystemBlobStore: one file per object under a root directory.

Layout: ``root/ab/abcdef01-...`` (fan-out by the first two hex digits of the name). Directories
are created 0700 and files 0600. A write goes to a hidden temporary file in the same directory,
is fsync'ed, then renamed into place with ``os.replace`` (and the directory fsync'ed), so a
reader sees either the whole object or none.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from rekam.store.blobs.errors import BlobNotFound, BlobStoreError
from rekam.store.blobs.names import is_blob_name, validate_blob_name, validate_name_prefix

_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
_HEX = frozenset("0123456789abcdef")


class FilesystemBlobStore:
    """Encrypted objects as files on a local (or mounted) file system."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"FilesystemBlobStore({str(self.root)!r})"

    # Paths -------------------------------------------------------------------------------------

    def _directory(self, name: str) -> Path:
        return self.root / name[:2]

    def path_of(self, name: str) -> Path:
        """Where the object ``name`` lives on disk (for operators and tests)."""
        validate_blob_name(name)
        return self._directory(name) / name

    def _where(self) -> str:
        return f"the file store at {self.root}"

    # Writing -----------------------------------------------------------------------------------

    def put(self, name: str, chunks: Iterable[bytes]) -> int:
        final = self.path_of(name)
        directory = final.parent
        self._make_directory(directory)
        temp = directory / f".{name}.{secrets.token_hex(8)}.partial"
        written = 0
        try:
            fd = os.open(temp, _WRITE_FLAGS, 0o600)
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        _fsync_directory(directory)
        return written

    def _make_directory(self, directory: Path) -> None:
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            if not directory.is_dir() or directory.is_symlink():
                raise BlobStoreError(
                    f"{directory} is not a directory; the file store at {self.root} is damaged"
                ) from None
        else:
            _fsync_directory(self.root)

    # Reading -----------------------------------------------------------------------------------

    def open(self, name: str) -> BinaryIO:
        path = self.path_of(name)
        try:
            fd = os.open(path, _READ_FLAGS)
        except FileNotFoundError:
            raise BlobNotFound(name, self._where()) from None
        return os.fdopen(fd, "rb")

    def exists(self, name: str) -> bool:
        return self.path_of(name).is_file()

    def size(self, name: str) -> int:
        path = self.path_of(name)
        try:
            return path.stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(name, self._where()) from None

    def names(self, prefix: str = "") -> Iterator[str]:
        validate_name_prefix(prefix)
        if len(prefix) >= 2:
            directories = [self.root / prefix[:2]]
        else:
            directories = sorted(
                entry
                for entry in self.root.iterdir()
                if len(entry.name) == 2
                and set(entry.name) <= _HEX
                and entry.name.startswith(prefix)
            )
        for directory in directories:
            try:
                entries = sorted(os.listdir(directory))
            except FileNotFoundError:
                continue
            for entry in entries:
                # temporary files start with "." and are not names: never listed
                if entry.startswith(prefix) and is_blob_name(entry):
                    yield entry

    # Deleting ----------------------------------------------------------------------------------

    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        path = self.path_of(name)
        try:
            path.unlink()
        except FileNotFoundError:
            if not missing_ok:
                raise BlobNotFound(name, self._where()) from None
            return
        _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
