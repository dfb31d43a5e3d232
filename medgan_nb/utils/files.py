"""Safe file writes and file hashes: a file written here is never left half-written.

- `atomic_write(path)`: a context manager that yields a binary file; when the block ends without an error
  the data is fsynced and moved onto `path` with ``os.replace``, so a crash leaves the previous file (or
  none), never a truncated one. Missing parent folders are created; the file gets the usual permissions
  of the process's umask.
- `file_sha256(path)`: the hex SHA-256 of a file's bytes, read in chunks, so any size works.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

TEMP_NAME_BYTES = 64        # of the target's name in its temp file's name: so a legal name's temp name is legal


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[BinaryIO]:
    """Open a temp file next to `path` for writing; on success fsync it and ``os.replace`` it onto `path`.

    A crash mid-write leaves the previous file (or none) in place, never a truncated one. The temp file is
    ``.<name>.<random>.tmp`` with `name` cut to `TEMP_NAME_BYTES`, so any legal name has a legal temp name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{_shortened(path.name, TEMP_NAME_BYTES)}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())               # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _shortened(name: str, limit: int) -> str:
    """`name` cut to at most `limit` bytes in the file system's encoding, at a character boundary."""
    while len(os.fsencode(name)) > limit:
        name = name[:-1]
    return name


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks (`hashlib.file_digest`)."""
    with open(path, "rb") as f:
        return _sha256_of(f)


def _sha256_of(f: BinaryIO) -> str:
    """Hex SHA-256 of an open binary file from its current position to its end."""
    return hashlib.file_digest(f, "sha256").hexdigest()


def refuse_existing(paths: Iterable[str | Path], hint: str = "pass overwrite=True to replace") -> None:
    """Raise FileExistsError naming every one of `paths` that exists (``a and b already exist; <hint>``).

    Called before any work, so that a refused call has neither spent time nor written anything.
    """
    taken = [str(p) for p in paths if Path(p).exists()]
    if len(taken) > 3:
        taken = [*taken[:2], f"{len(taken) - 2} more"]
    if taken:
        raise FileExistsError(f"{' and '.join(taken)} already exist{'s' if len(taken) == 1 else ''}; {hint}")
