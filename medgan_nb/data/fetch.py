"""Download a public data set: resumable, verified, safely extracted.

The one data set we need is Kvasir-SEG (1,000 colonoscopy images of polyps).
``download("kvasir-seg", Path("data"))`` walks through these steps, and each
step is skipped when its result is already on disk:

1. ``data/Kvasir-SEG/images`` exists and is marked complete -> return at once.
2. Take ``data/kvasir-seg.zip`` if it is there (downloaded earlier, or placed
   there by hand); otherwise download into ``kvasir-seg.zip.part``, resuming
   an interrupted download with an HTTP ``Range`` request.
3. Verify that file's size and SHA-256, then rename ``.part`` to ``.zip``.
4. Extract safely (no member may escape the target folder) into a temporary
   folder, move the files into place, and write a marker file last.

Nothing is ever deleted except the ``.part`` and temporary files this module
made itself: a file that fails verification is renamed ``*.corrupt`` and kept.

We keep our own code rather than ``torchvision.datasets.utils``: its
``download_url`` checks MD5 only, cannot resume, has no timeout, retries over
plain ``http:`` and writes straight to the final name; its ``extract_archive``
(``ZipFile.extractall``) silently renames ``../x`` members and overwrites files.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import ssl
import stat
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Callable

from tqdm.auto import tqdm

from ..utils.files import file_sha256
from .remote import DATASETS, RemoteDataset


class DownloadError(RuntimeError):
    """A download, verification or extraction failed; the message says what to do."""


def _say(message: str) -> None:
    """Progress messages go to stderr so stdout stays clean for scripts."""
    print(message, file=sys.stderr)


def _manual_instructions(ds: RemoteDataset, to: Path) -> str:
    """What to do when this machine cannot download the file itself."""
    size = f"{ds.size:,} bytes" if ds.size is not None else "size unknown"
    sha = f"SHA-256 {ds.sha256}" if ds.sha256 else "SHA-256 unknown"
    return (
        f"Download {ds.url} in a browser and place {ds.filename} in "
        f"{to.absolute()}/, then re-run the same command. "
        f"Expected file: {ds.filename} ({size}, {sha})."
    )


# ---------------------------------------------------------------- checking


def verify(path: Path, size: int | None, sha256: str | None) -> None:
    """Raise DownloadError unless ``path`` has the expected size and SHA-256.

    The size is checked first because it is free; ``None`` skips a check.
    """
    path = Path(path)
    if not path.is_file():
        raise DownloadError(f"{path}: file not found")
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise DownloadError(
            f"{path}: size mismatch: expected {size} bytes, got {actual_size} bytes"
        )
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256.lower():
            raise DownloadError(
                f"{path}: SHA-256 mismatch: expected {sha256.lower()}, got {actual}"
            )


def _quarantine(path: Path, final_name: Path) -> Path:
    """Rename a bad file to ``<final_name>.corrupt`` (never overwriting) and return it."""
    corrupt = final_name.with_name(final_name.name + ".corrupt")
    n = 1
    while corrupt.exists():
        corrupt = final_name.with_name(f"{final_name.name}.corrupt{n}")
        n += 1
    os.replace(path, corrupt)
    return corrupt


# ------------------------------------------------------------- downloading


def _fetch(
    ds: RemoteDataset, zip_path: Path, *, urlopen: Callable[..., Any], progress: bool, timeout: float
) -> Path:
    """Download ``ds.url`` into ``<zip_path>.part``, resuming if it exists; return it.

    A resumed download asks the server for the missing bytes only
    (``Range: bytes=N-``). Status 206 means the server agreed and we append;
    status 200 means it ignored the range and sends everything, so we start
    the file over.
    """
    part = zip_path.with_name(zip_path.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    if ds.size is not None and offset >= ds.size:
        return part  # already complete (or too long): let verification decide

    manual = _manual_instructions(ds, zip_path.parent)
    response = _request(ds, offset, manual, urlopen=urlopen, timeout=timeout)
    if response is None:
        return part
    with response:
        length = response.headers.get("Content-Length")
        offset, mode = _write_mode(ds, response, offset, part, manual)
        total = offset + int(length) if length is not None else ds.size
        received = _receive(ds, response, part, mode, offset, total, progress)
    if length is not None and received < int(length):
        raise DownloadError(
            f"The server closed the connection after {offset + received:,} bytes. "
            f"Re-run the same command to resume from {part}."
        )
    return part


def _request(
    ds: RemoteDataset, offset: int, manual: str, *, urlopen: Callable[..., Any], timeout: float
) -> Any:
    """The server's response for ``ds.url`` from byte ``offset`` on, or None when nothing is left to send.

    HTTP 416 for a resumed download means the ``.part`` file is already complete. Every other HTTP
    error and every network failure (refused, timed out, certificate) is a DownloadError that ends
    with ``manual``, the instructions for downloading by hand.
    """
    headers = {"User-Agent": "medgan_nb (python urllib)"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urlopen(urllib.request.Request(ds.url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left to send: .part is complete
            return None
        raise DownloadError(
            f"The server answered HTTP {err.code} ({err.reason}) for {ds.url}.\n{manual}"
        ) from err
    except OSError as err:  # URLError, timeouts, refused connections
        reason = getattr(err, "reason", err)
        hint = ""
        if isinstance(reason, ssl.SSLCertVerificationError):
            hint = (
                " Python could not verify the server's certificate (this server has "
                "been reported to omit an intermediate certificate)."
            )
        raise DownloadError(f"No network access to {ds.url} ({reason}).{hint}\n{manual}") from err


def _write_mode(ds: RemoteDataset, response: Any, offset: int, part: Path, manual: str) -> tuple[int, str]:
    """(offset, file mode) for the response body: ("ab") after ``offset`` bytes when the server resumed
    (206, at the right byte), (0, "wb") when it sends the whole file (200); DownloadError otherwise."""
    if response.status == 206:
        content_range = response.headers.get("Content-Range", "")
        if content_range and not content_range.startswith(f"bytes {offset}-"):
            raise DownloadError(
                f"The server resumed {ds.url} at the wrong place ({content_range!r}, "
                f"wanted byte {offset}). Delete {part} and re-run."
            )
        return offset, "ab"
    if response.status == 200:
        if offset:
            _say("The server does not support resuming; starting over.")
        return 0, "wb"
    raise DownloadError(f"Unexpected HTTP status {response.status} for {ds.url}.\n{manual}")


def _receive(
    ds: RemoteDataset, response: Any, part: Path, mode: str, offset: int, total: int | None, progress: bool
) -> int:
    """Copy the response body into ``part`` (opened with ``mode``), synced to disk; return the bytes received.

    ``offset`` and ``total`` (bytes, None when unknown) only set the progress bar. A connection that
    fails midway is a DownloadError saying how to resume; what arrived stays in ``part``.
    """
    received = 0
    with open(part, mode) as f, tqdm(
        total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
        desc=ds.filename, disable=not progress,
    ) as bar:
        try:
            while block := response.read(1 << 16):
                f.write(block)
                received += len(block)
                bar.update(len(block))
        except OSError as err:  # connection reset, timeout, incomplete read
            raise DownloadError(
                f"The download of {ds.url} was interrupted after "
                f"{offset + received:,} bytes ({err}). Re-run the same command "
                f"to resume from {part}."
            ) from err
        f.flush()
        os.fsync(f.fileno())
    return received


# -------------------------------------------------------------- extracting


def _marker_path(zip_path: Path, dest: Path) -> Path:
    """The file whose existence says "``zip_path`` was fully extracted into ``dest``"."""
    return Path(dest) / f".{Path(zip_path).name}.complete"


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath:
    """The relative path of a zip member, or DownloadError if it could escape.

    A malicious archive can hold names like ``../../.bashrc``, ``/etc/passwd``
    or ``C:\\Windows\\...``, or a symbolic link pointing anywhere ("zip slip").
    We refuse the whole archive rather than guess what was meant.
    """
    name = info.filename.replace("\\", "/")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DownloadError(f"unsafe archive member (symbolic link): {info.filename!r}")
    if name.startswith("/") or PureWindowsPath(name).drive:
        raise DownloadError(f"unsafe archive member (absolute path): {info.filename!r}")
    parts = PurePosixPath(name).parts
    if ".." in parts:
        raise DownloadError(f"unsafe archive member ('..' in path): {info.filename!r}")
    if not parts or "\0" in name:
        raise DownloadError(f"unsafe archive member (bad name): {info.filename!r}")
    return PurePosixPath(*parts)


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    """Write one member to ``target``; reading checks the member's CRC."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def safe_extract(zip_path: Path, dest: Path) -> list[Path]:
    """Extract ``zip_path`` into ``dest`` and return the extracted file paths.

    Every member name is checked before anything is written (see
    ``_member_path``). Files are first extracted into a temporary folder inside
    ``dest`` (same disk, so moving is a cheap rename), then moved into place,
    and only then is the marker ``dest/.<zip name>.complete`` written. An
    interrupted run therefore never leaves a tree that looks complete, and the
    next run simply extracts again.

    Files already in ``dest`` with identical content are left alone; a file
    with *different* content is never overwritten: DownloadError instead.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    marker = _marker_path(zip_path, dest)
    marker.unlink(missing_ok=True)  # our own marker: the tree is being rewritten
    prefix = f".{zip_path.name}.extract-"
    for stale in dest.glob(prefix + "*"):  # left by a run that was killed
        shutil.rmtree(stale, ignore_errors=True)

    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as err:
        raise DownloadError(f"{zip_path}: not a valid zip file ({err})") from err
    with zf:
        members = [(info, _member_path(info)) for info in zf.infolist()]
        files = [rel for info, rel in members if not info.is_dir()]
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=dest))
        try:
            for info, rel in members:
                if not info.is_dir():
                    _extract_member(zf, info, tmp / rel)
            conflicts = [
                str(dest / rel) for rel in files
                if (dest / rel).exists()
                and not ((dest / rel).is_file() and filecmp.cmp(tmp / rel, dest / rel, shallow=False))
            ]
            if conflicts:
                shown = "\n  ".join(conflicts[:5]) + ("\n  ..." if len(conflicts) > 5 else "")
                raise DownloadError(
                    f"{len(conflicts)} file(s) in {dest} differ from the archive and would be "
                    f"overwritten:\n  {shown}\nMove them (or their folder) elsewhere and re-run."
                )
            for rel in files:
                if not (dest / rel).exists():
                    (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp / rel, dest / rel)
            for info, rel in members:  # empty folders in the archive, if any
                if info.is_dir():
                    (dest / rel).mkdir(parents=True, exist_ok=True)
        except zipfile.BadZipFile as err:
            raise DownloadError(f"{zip_path}: damaged archive ({err})") from err
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    marker.write_text("".join(f"{rel}\n" for rel in files), encoding="utf-8")
    return [dest / rel for rel in files]


# ----------------------------------------------------------------- download


def download(
    name: str,
    to: Path,
    *,
    urlopen: Callable[..., Any] = urllib.request.urlopen,
    progress: bool = True,
    timeout: float = 30,
) -> Path:
    """Make sure data set ``name`` is extracted under ``to``; return its images folder.

    Safe to call again and again: once the data set is extracted, this returns
    without touching the network. ``urlopen`` is a parameter so tests can pass
    a fake server; ``timeout`` (seconds) keeps an offline machine from hanging.
    """
    if name not in DATASETS:
        raise DownloadError(
            f"Unknown data set {name!r}. Known data sets: {', '.join(sorted(DATASETS))}"
        )
    ds = DATASETS[name]
    to = Path(to)
    images = to / ds.image_dir
    zip_path = to / ds.filename
    if _marker_path(zip_path, to).is_file() and images.is_dir():
        return images

    to.mkdir(parents=True, exist_ok=True)
    pin = zip_path.with_name(zip_path.name + ".sha256")
    sha256 = ds.sha256 or _recorded_sha256(pin)
    _obtain(ds, zip_path, sha256, urlopen=urlopen, progress=progress, timeout=timeout)
    if sha256 is None:
        _record_sha256(ds, zip_path, pin)

    _say(f"Extracting {zip_path} into {to}")
    safe_extract(zip_path, to)
    if not images.is_dir():
        raise DownloadError(
            f"{zip_path} was extracted, but it has no folder {ds.image_dir}. "
            f"The archive layout may have changed; look inside {to}."
        )
    _say(f"Done: {images}\nPlease cite: {ds.citation}")
    return images


def _obtain(
    ds: RemoteDataset, zip_path: Path, sha256: str | None, *, urlopen: Callable[..., Any], progress: bool,
    timeout: float,
) -> None:
    """Put a verified archive at ``zip_path``: the file already there (downloaded earlier, or placed by
    hand), else a download. A file that fails verification is kept as ``*.corrupt`` and the DownloadError
    says how to get it again."""
    if zip_path.exists():  # downloaded earlier, or placed here by hand
        got = zip_path
    else:
        _say(f"Downloading {ds.name} from {ds.url}\nTerms: {ds.terms}")
        got = _fetch(ds, zip_path, urlopen=urlopen, progress=progress, timeout=timeout)
    try:
        verify(got, ds.size, sha256)
    except DownloadError as err:
        corrupt = _quarantine(got, zip_path)
        raise DownloadError(
            f"{err}\nThe file was kept as {corrupt}. Re-run the same command to download "
            f"it again; if it fails the same way, the publisher may have changed the "
            f"archive. {_manual_instructions(ds, zip_path.parent)}"
        ) from err
    if got != zip_path:
        os.replace(got, zip_path)


def _recorded_sha256(pin: Path) -> str | None:
    """The SHA-256 recorded in ``pin`` (lower case), or None when there is none.

    Without a published checksum we trust on first use: the SHA-256 of the first file we got is
    recorded next to it (``<zip name>.sha256``, sha256sum format) and checked from then on.
    """
    recorded = pin.read_text(encoding="utf-8").split() if pin.is_file() else []
    return recorded[0].lower() if recorded else None


def _record_sha256(ds: RemoteDataset, zip_path: Path, pin: Path) -> None:
    """Record the archive's SHA-256 in ``pin`` and ask the user to compare it with the publisher's."""
    digest = file_sha256(zip_path)
    pin.write_text(f"{digest}  {zip_path.name}\n", encoding="utf-8")
    _say(
        f"No published checksum is known for {ds.filename}. Got "
        f"{zip_path.stat().st_size:,} bytes, SHA-256 {digest}; recorded in {pin}. "
        f"Please compare these with the values from the publisher ({ds.url})."
    )
