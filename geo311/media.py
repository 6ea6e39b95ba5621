"""Media storage behind one interface: a local folder by default, object storage later."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session

PUBLIC_PREFIX = "public/"
PRIVATE_PREFIX = "private/"


class MediaStore(Protocol):
    """Where photo bytes live. Keys are POSIX-style relative paths."""

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...


class LocalMediaStore:
    """A folder on disk; public files under ``public/``, originals under ``private/``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        rel = PurePosixPath(key)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"bad media key: {key!r}")
        return self.root.joinpath(*rel.parts)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def public_file(self, key: str) -> Path | None:
        """Return the file of a public key, or None for private or missing keys."""
        if not key.startswith(PUBLIC_PREFIX):
            return None
        try:
            path = self._path(key)
        except ValueError:
            return None
        return path if path.is_file() else None


def stage_files(session: Session, media: MediaStore, files: dict[str, bytes]) -> None:
    """Write files now, and delete them again if the session's transaction is rolled back,
    so a refused or failed change leaves no file behind."""
    written: list[str] = []

    def _undo(_: Session) -> None:
        for key in written:
            media.delete(key)

    event.listen(session, "after_rollback", _undo, once=True)
    for key, data in files.items():
        media.put(key, data)
        written.append(key)
