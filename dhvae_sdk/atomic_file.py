"""Atomic writes of user files: readers never see a half-written file.

Every temporary file or folder is a hidden sibling of its target named
``.<target name>.<pid>.<random>.tmp<target suffix>``. A process killed mid-write leaves one
behind; the next successful write of the same target removes those whose process is gone
(a live writer's, e.g. a concurrent run's, is left alone).
"""
from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from dhvae_sdk.errors import DHVAEError

_UMASK = os.umask(0)
os.umask(_UMASK)  # reading the umask means setting it; put it back at once
TEMPORARY_MARK = ".tmp"


class OutputError(DHVAEError, OSError):
    """An output path that cannot be written; the message names it and the fix."""


def temporary_sibling(path: str | os.PathLike, directory: bool = False) -> Path:
    """A new, empty temporary file (or folder) next to ``path``, with the umask's mode.

    The name keeps ``path``'s suffix so writers that choose a format from the suffix (ffmpeg,
    PIL) behave as for the final name.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    naming = {"prefix": f".{path.name}.{os.getpid()}.", "suffix": f"{TEMPORARY_MARK}{path.suffix}", "dir": path.parent}
    if directory:
        temporary = Path(tempfile.mkdtemp(**naming))
        temporary.chmod(0o777 & ~_UMASK)  # mkdtemp makes it private; the result is an ordinary folder
    else:
        handle, name = tempfile.mkstemp(**naming)
        os.close(handle)
        temporary = Path(name)
        apply_umask_mode(temporary)
    return temporary


def apply_umask_mode(path: Path) -> None:
    """Give a file the mode a plain ``open(path, "w")`` would: temporary files start private,
    and some writers (safetensors) recreate the file with their own mode."""
    path.chmod(0o666 & ~_UMASK)


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``path`` left by processes that no longer run; returns them."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[A-Za-z0-9_]+{re.escape(TEMPORARY_MARK + path.suffix)}")
    removed = []
    for candidate in path.parent.glob(f".{glob.escape(path.name)}.*{TEMPORARY_MARK}*"):
        match = pattern.fullmatch(candidate.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of this process may be writing the same target
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # alive but another user's (or not a pid we can judge): leave it
    return True


def require_writable(path: str | os.PathLike) -> None:
    """Fail now, in one sentence, if ``path`` cannot be written, rather than after a long computation."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; give a file name inside it")
    if not path.parent.is_dir():
        reason = "is a file, not a folder" if path.parent.exists() else "does not exist; create it first"
        raise OutputError(f"cannot write {path}: {path.parent} {reason}")
    try:
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as error:
        raise OutputError(f"cannot write {path}: {path.parent} does not accept new files ({error.strerror})") from None


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    On error the temporary file is removed and ``path`` is left as it was. ``durable`` also
    survives a power loss: the file is fsynced before the rename and its folder after
    (checkpoints and training states).
    """
    path = Path(path)
    temp_path = temporary_sibling(path)
    try:
        yield temp_path
        apply_umask_mode(temp_path)
        if durable:
            _fsync(temp_path)
        os.replace(temp_path, path)
        if durable:
            _fsync(path.parent)
    finally:
        temp_path.unlink(missing_ok=True)
    remove_stale_temporaries(path)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
