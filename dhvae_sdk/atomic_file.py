"""Atomic writes of user files: readers never see a half-written file."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)  # reading the umask means setting it; put it back at once


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    The temporary name keeps ``path``'s suffix so writers that choose a format from the
    suffix (ffmpeg, PIL) behave as for the final name. On error the temporary file is removed
    and ``path`` is left as it was. ``durable`` also survives a power loss: the file is
    fsynced before the rename and its folder after (checkpoints and training states).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    temp_path = Path(temp_name)
    temp_path.chmod(0o666 & ~_UMASK)  # mkstemp makes it private; the result is an ordinary user file
    try:
        yield temp_path
        if durable:
            _fsync(temp_path)
        os.replace(temp_path, path)
        if durable:
            _fsync(path.parent)
    finally:
        temp_path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
