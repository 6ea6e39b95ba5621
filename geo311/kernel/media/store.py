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
# Originals may carry where a resident lives: only the service's own user reads them.
# Public copies are served to anyone, so a front web server running as another user
# may serve them too.
_PRIVATE_DIR_MODE = 0o700
_PRIVATE_FILE_MODE = 0o600
_PUBLIC_DIR_MODE = 0o755
_PUBLIC_FILE_MODE = 0o644


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
        private = not key.startswith(PUBLIC_PREFIX)
        self._make_dirs(path.parent, _PRIVATE_DIR_MODE if private else _PUBLIC_DIR_MODE)
        # Write then rename, so a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            # Set explicitly rather than through the umask, which the service may not own.
            os.fchmod(fd, _PRIVATE_FILE_MODE if private else _PUBLIC_FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _make_dirs(self, directory: Path, mode: int) -> None:
        """Create ``directory`` and its missing parents below the root with ``mode``.

        The first level under the root (``private``, ``public``) gets ``mode`` even if it
        exists, so a store made before originals were kept private is closed on next write.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        parts = directory.relative_to(self.root).parts
        current = self.root
        for depth, part in enumerate(parts):
            current = current / part
            try:
                current.mkdir()
            except FileExistsError:
                if depth > 0:
                    continue
            # mkdir's mode is cut by the umask; chmod is not.
            current.chmod(mode)

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
