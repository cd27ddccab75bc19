"""Atomic snapshot directories, shared by every index implementation.

Layout of a snapshot `directory`:

    CURRENT                 one line: the name of the live snapshot below
    snapshot-<rev>-<id>/    manifest.json plus data files, written once

A save writes a fresh `snapshot-*` directory under a temporary name, fsyncs
its files, renames it into place and only then replaces CURRENT with
os.replace (atomic on POSIX). A crash at any point leaves CURRENT naming the
previous, complete snapshot; leftovers are deleted by the next save. Renaming
a directory over a non-empty one is not possible on POSIX, hence the pointer
file (LevelDB's CURRENT/MANIFEST scheme).
"""

from __future__ import annotations

import errno
import json
import mmap
import os
import shutil
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mnemo_server import storage

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
_PREFIX = "snapshot-"
_TMP_PREFIX = ".tmp-snapshot-"


class SnapshotError(Exception):
    """A snapshot is missing, unreadable or inconsistent; the caller rebuilds."""


def write(directory: Path, revision: int, fill: Callable[[Path], dict[str, Any]]) -> int:
    """Writes a new snapshot and makes it current.

    Args:
        directory: the snapshot directory (created if missing).
        revision: recorded in the snapshot's name, for people listing it.
        fill: writes the data files into the directory it is given and returns
            the manifest, which this function writes last.

    Returns:
        Bytes written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{_PREFIX}{revision:012d}-{uuid.uuid4().hex[:12]}"
    tmp = directory / f"{_TMP_PREFIX}{name}"
    tmp.mkdir()
    try:
        manifest = fill(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, separators=(",", ":")))
        total = 0
        for path in tmp.iterdir():
            total += path.stat().st_size
            _fsync_file(path)
        _fsync_dir(tmp)
        os.rename(tmp, directory / name)
        _fsync_dir(directory)
        pointer = directory / f"{CURRENT}.tmp"
        with open(pointer, "w") as f:
            f.write(name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(pointer, directory / CURRENT)
        _fsync_dir(directory)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except RuntimeError as exc:
        # FAISS reports a failed fwrite as a RuntimeError without an errno:
        # looked at before the partial files are deleted, a (nearly) full
        # filesystem says why.
        full = storage.out_of_space(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise OSError(errno.ENOSPC, f"no space left on the device of {directory} ({exc})") from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_stale(directory, keep=name)
    return total


def read_manifest(directory: Path) -> tuple[Path, dict[str, Any]]:
    """The current snapshot's directory and its parsed manifest.

    Raises:
        SnapshotError: there is no current snapshot or its manifest is unreadable.
    """
    try:
        name = (directory / CURRENT).read_text().strip()
    except FileNotFoundError as exc:
        raise SnapshotError(f"no snapshot in {directory}") from exc
    if not name.startswith(_PREFIX) or "/" in name:
        raise SnapshotError(f"CURRENT names {name!r}, not a snapshot")
    path = directory / name
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"unreadable manifest in {path}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise SnapshotError(f"manifest in {path} is not an object")
    return path, manifest


def checksum(data: npt.NDArray[Any]) -> int:
    """CRC-32 of an array's bytes (several GB/s, so cheap even for 1M vectors)."""
    return zlib.crc32(np.ascontiguousarray(data).view(np.uint8).reshape(-1).data)


def file_checksum(path: Path) -> int:
    """CRC-32 of a file's bytes, read through mmap (no copy into Python)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return zlib.crc32(b"")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return zlib.crc32(data)


def save_array(directory: Path, name: str, array: npt.NDArray[Any]) -> dict[str, Any]:
    """Writes one .npy file; returns its manifest record (file name and checksum)."""
    array = np.ascontiguousarray(array)
    np.save(directory / name, array, allow_pickle=False)
    return {"file": name, "crc32": checksum(array)}


def load_array(
    directory: Path, record: Any, *, dtype: npt.DTypeLike, shape: tuple[int, ...]
) -> npt.NDArray[Any]:
    """Reads one .npy file written by save_array and checks it fully.

    Raises:
        SnapshotError: missing file, other dtype or shape, or checksum mismatch.
    """
    try:
        name = str(record["file"])
        expected_crc = int(record["crc32"])
        array: npt.NDArray[Any] = np.load(directory / name, allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
        raise SnapshotError(f"unreadable array {record!r}: {exc}") from exc
    if array.dtype != np.dtype(dtype) or array.shape != shape:
        raise SnapshotError(f"{name}: {array.dtype}{array.shape}, expected {np.dtype(dtype)}{shape}")
    if checksum(array) != expected_crc:
        raise SnapshotError(f"{name}: checksum mismatch")
    return array


def _remove_stale(directory: Path, *, keep: str) -> None:
    for path in directory.iterdir():
        if path.name == keep:
            continue
        if path.name.startswith((_PREFIX, _TMP_PREFIX)) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
