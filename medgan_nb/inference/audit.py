"""Checking an enhance audit log against the files it names.

`enhance` appends one JSON line per output to ``audit.jsonl``, with the input's and the output's paths and
SHA-256. `verify_audit(path, fields)` recomputes those hashes and returns one `AuditMismatch` per file that
is missing or has changed (an empty list: everything is there and unchanged). `path` is the log or the
folder that holds it. Raises FileNotFoundError when there is no log, and ValueError naming the line when a
line is not such a record.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..utils.files import file_sha256

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


def verify_audit(path: str | Path, fields: Sequence[str] = ("input", "output")) -> list[AuditMismatch]:
    """Recompute the SHA-256 of the files every record of an enhance audit log names; return the mismatches
    (an empty list: every file is there and unchanged).

    path: the ``audit.jsonl`` file or the folder that holds it. Raises FileNotFoundError if there is no log,
    ValueError naming the line if a line is not a JSON record with the checked paths and hashes.
    """
    path = Path(path)
    log = path / "audit.jsonl" if path.is_dir() else path
    if not log.is_file():
        raise FileNotFoundError(f"no audit log {log}")
    problems = []
    for number, line in enumerate(log.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            checks = [(f, record[f], record[f"{f}_sha256"]) for f in fields]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{log}, line {number}: not an audit record ({type(e).__name__}: {e})") from None
        for field, file, recorded in checks:
            actual = file_sha256(file) if Path(file).is_file() else None
            if actual != recorded:
                problems.append(AuditMismatch(number, field, file, recorded, actual))
    return problems
