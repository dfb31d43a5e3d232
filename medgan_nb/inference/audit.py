"""Writing and checking an enhance audit log.

`enhance` appends one JSON line per output to ``audit.jsonl``, with the input's and the output's paths and
SHA-256:

- `append_record(log_file, record)`: the record's whole line in one ``os.write``, fsynced; if that fails (a full
  disk) the log is cut back to its previous length, so it stays valid JSON lines. A symbolic link is refused
  (``O_NOFOLLOW``): the log is a plain file in the output folder.
- `repair_log(log_file)`: cuts an incomplete last line (left by a crash mid-append) before a run appends.
- `read_records(path)`: the (line number, record) pairs of a log.
- `verify_audit(path, fields)` recomputes the hashes and returns one `AuditMismatch` per file that is missing
  or has changed (an empty list: everything is there and unchanged). A record whose output a later record
  names again is superseded (``overwrite=True`` replaced that file): only the last record per output is
  checked. `path` is the log or the folder that holds it. Raises FileNotFoundError when there is no log, and
  ValueError naming the line when a line is not such a record.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from .. import __version__
from ..utils.files import file_sha256
from .outputs import path_text

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ audit logs
@dataclass(frozen=True)
class AuditMismatch:
    """One audit record whose file is missing or no longer has the recorded SHA-256."""
    line: int                   # 1-based line of audit.jsonl
    field: str                  # "input" or "output"
    path: str
    recorded: str
    actual: str | None          # None: the file is missing

    def __str__(self) -> str:
        what = "is missing" if self.actual is None else f"has SHA-256 {self.actual[:12]}…"
        return f"line {self.line}: {self.field} {self.path} {what}, the log records {self.recorded[:12]}…"


def _open_log(log_file: Path, flags: int) -> int:
    """A file descriptor of the log, never through a symbolic link (ValueError naming it)."""
    try:
        return os.open(log_file, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ValueError(f"{log_file} is a symbolic link; the audit log must be a plain file in the output "
                             "folder: remove the link") from None
        raise


def append_record(log_file: str | Path, record: dict[str, Any]) -> None:
    """Append `record` to the log as one JSON line, in one ``os.write``, fsynced.

    On any failure (OSError such as ENOSPC, a short write, an interrupt) the log is cut back to its previous
    length before the error goes on, so it never holds part of a line. ValueError for a symbolic link.
    """
    line = (json.dumps(record) + "\n").encode("utf-8")
    fd = _open_log(Path(log_file), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, f"only {written} of {len(line)} bytes of the record could be written")
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def repair_log(log_file: str | Path) -> None:
    """Cut an incomplete last line (no newline: a crash mid-append) off the log, with a warning, so that the
    next record starts on a line of its own. Nothing to do when the log is missing or ends with a newline;
    ValueError for a symbolic link. Call it only while no other run appends (`enhance` holds the folder's lock)."""
    log_file = Path(log_file)
    if not os.path.lexists(log_file):
        return
    fd = _open_log(log_file, os.O_RDWR)
    try:
        size = end = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        while end > 0:                                   # back to the last newline, 64 KiB at a time
            start = max(0, end - 65536)
            newline = os.pread(fd, end - start, start).rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        os.ftruncate(fd, end)
        log.warning("%s: cut an incomplete last line (%d bytes) left by an interrupted run",
                    path_text(log_file), size - end)
    finally:
        os.close(fd)


def read_records(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(1-based line number, record) of every non-blank line of a log (or of the folder's ``audit.jsonl``).

    Raises FileNotFoundError if there is no log, ValueError naming the line if a line is not a JSON object.
    """
    path = Path(path)
    log_file = path / "audit.jsonl" if path.is_dir() else path
    if not log_file.is_file():
        raise FileNotFoundError(f"no audit log {path_text(log_file)}")
    records = []
    for number, line in enumerate(log_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path_text(log_file)}, line {number}: not an audit record (JSONDecodeError: {e})"
                             ) from None
        if not isinstance(record, dict):
            raise ValueError(f"{path_text(log_file)}, line {number}: not an audit record (not a JSON object)")
        records.append((number, record))
    return records


def verify_audit(path: str | Path, fields: Sequence[str] = ("input", "output")) -> list[AuditMismatch]:
    """Recompute the SHA-256 of the files the records of an enhance audit log name; return the mismatches
    (an empty list: every file is there and unchanged).

    Only the last record per output is checked: an earlier one is superseded (``overwrite=True`` replaced the
    file, and the new record says so). path: the ``audit.jsonl`` file or the folder that holds it. Raises
    FileNotFoundError if there is no log, ValueError naming the line if a line is not a JSON record with the
    checked paths and hashes.
    """
    path = Path(path)
    log_file = path / "audit.jsonl" if path.is_dir() else path
    records = read_records(log_file)
    last = {record.get("output"): number for number, record in records}
    problems = []
    for number, record in records:
        try:
            checks = [(f, record[f], record[f"{f}_sha256"]) for f in fields]
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path_text(log_file)}, line {number}: not an audit record "
                             f"({type(e).__name__}: {e})") from None
        if last[record.get("output")] != number:
            continue                                     # superseded by a later record of the same output
        for field, file, recorded in checks:
            actual = file_sha256(file) if Path(file).is_file() else None
            if actual != recorded:
                problems.append(AuditMismatch(number, field, file, recorded, actual))
    return problems


def output_record(run: Any, src: Path, dst: Path, input_sha256: str, width: int, height: int, channels: int,
                  bits: int) -> dict[str, Any]:
    """The fields every audit line has: when, from which file to which (paths and SHA-256s), with which weights
    (`run`: the open weights of `medgan_nb.inference.files`), on what, at what size, labelled or not."""
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": path_text(src.resolve()),
        "input_sha256": input_sha256,
        "output": path_text(dst.resolve()),
        "output_sha256": file_sha256(dst),
        "checkpoint": path_text(run.checkpoint_file.resolve()) if run.checkpoint_file is not None else None,
        "model": run.model_name,
        "checkpoint_sha256": run.checkpoint_sha256,
        "medgan_nb_version": __version__,
        "device": str(run.device),
        "backend": run.backend,
        "width": width,
        "height": height,
        "channels": channels,
        "bits": bits,
        "label": run.label,
        "source_name_in_png": run.record_source_name,
    }
