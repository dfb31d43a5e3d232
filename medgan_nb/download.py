"""Download a public data set: resumable, verified, safely extracted.

The one data set we need is Kvasir-SEG (1,000 colonoscopy images of polyps).
``download("kvasir-seg", Path("data"))`` walks through these steps, and each
step can be skipped when its result is already on disk:

1. ``data/Kvasir-SEG/images`` exists and is marked complete -> return at once.
2. ``data/kvasir-seg.zip`` exists (downloaded earlier, or placed there by
   hand) and has the expected size and SHA-256 -> go to step 4.
3. Download into ``kvasir-seg.zip.part``, resuming an interrupted download
   with an HTTP ``Range`` request, verify, then rename to ``kvasir-seg.zip``.
4. Extract safely (no member may escape the target folder) into a temporary
   folder, move the files into place, and write a marker file last.

Nothing is ever deleted except the ``.part`` and temporary files this module
made itself: a file that fails verification is renamed ``*.corrupt`` and kept.
"""

from __future__ import annotations

import filecmp
import hashlib
import os
import re
import shutil
import ssl
import stat
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm


@dataclass(frozen=True)
class RemoteDataset:
    """Where a data set lives, how to check it, and the rules for using it.

    ``size`` and ``sha256`` describe the archive at ``url``; either may be
    ``None`` when unknown. ``image_dir`` is the images folder inside the
    extracted tree, relative to the download folder.
    """

    name: str
    url: str
    filename: str
    size: int | None
    sha256: str | None
    image_dir: str
    citation: str
    terms: str


DATASETS: dict[str, RemoteDataset] = {
    "kvasir-seg": RemoteDataset(
        name="kvasir-seg",
        url="https://datasets.simula.no/downloads/kvasir-seg.zip",
        filename="kvasir-seg.zip",
        # Neither value is published by Simula. The SHA-256 is the one pinned
        # by torch-em (github.com/constantinpape/torch-em,
        # torch_em/data/datasets/medical/kvasir.py, CHECKSUM), and the same
        # value appears in several unrelated projects' download scripts. The
        # size, 46,227,172 bytes, comes from a project's data report that
        # quotes it together with that same SHA-256; it agrees with the
        # "46.2 MB" given by the dataset authors' MedAI starter repository
        # (github.com/Nordic-Machine-Intelligence/
        # MedAI-Transparency-in-Medical-Image-Segmentation, README.rst).
        size=46_227_172,
        sha256="03b30e21d584e04facf49397a2576738fd626815771afbbf788f74a7153478f7",
        image_dir="Kvasir-SEG/images",
        citation=(
            "D. Jha, P. H. Smedsrud, M. A. Riegler, P. Halvorsen, T. de Lange, "
            "D. Johansen, H. D. Johansen. Kvasir-SEG: A Segmented Polyp Dataset. "
            "MultiMedia Modeling (MMM 2020), LNCS 11962, pp. 451-462, Springer. "
            "doi:10.1007/978-3-030-37734-2_37"
        ),
        terms=(
            "Free for research and educational purposes only; commercial use "
            "needs prior written permission. Cite the Kvasir-SEG paper (Jha et al., "
            "MMM 2020) in any publication that uses the data. "
            "See https://datasets.simula.no/kvasir-seg/"
        ),
    ),
}


class DownloadError(RuntimeError):
    """A download, verification or extraction failed; the message says what to do."""


# --------------------------------------------------------------------------
# Checking a file
# --------------------------------------------------------------------------


def sha256sum(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file as lowercase hex, read in chunks so memory stays small."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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
        actual = sha256sum(path)
        if actual != sha256.lower():
            raise DownloadError(
                f"{path}: SHA-256 mismatch: expected {sha256.lower()}, got {actual}"
            )


# --------------------------------------------------------------------------
# Extracting an archive safely
# --------------------------------------------------------------------------

_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")


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
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DownloadError(f"unsafe archive member (symbolic link): {info.filename!r}")
    if name.startswith("/") or _DRIVE_LETTER.match(name):
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
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=dest))
        try:
            files = [rel for info, rel in members if not info.is_dir()]
            for info, rel in members:
                if not info.is_dir():
                    _extract_member(zf, info, tmp / rel)
            _move_into_place(tmp, dest, files)
            for info, rel in members:  # empty folders in the archive, if any
                if info.is_dir():
                    (dest / rel).mkdir(parents=True, exist_ok=True)
        except zipfile.BadZipFile as err:
            raise DownloadError(f"{zip_path}: damaged archive ({err})") from err
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    marker.write_text("".join(f"{rel}\n" for rel in files), encoding="utf-8")
    return [dest / rel for rel in files]


def _move_into_place(tmp: Path, dest: Path, files: list[PurePosixPath]) -> None:
    """Move extracted files from ``tmp`` to ``dest`` without clobbering user data."""
    conflicts = [
        str(dest / rel)
        for rel in files
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
        target = dest / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, target)


# --------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------


def _say(message: str) -> None:
    """Progress messages go to stderr so stdout stays clean for scripts."""
    print(message, file=sys.stderr)


def _expected(ds: RemoteDataset) -> str:
    """Human-readable expected size and checksum, for error messages."""
    size = f"{ds.size:,} bytes" if ds.size is not None else "size unknown"
    sha = f"SHA-256 {ds.sha256}" if ds.sha256 else "SHA-256 unknown"
    return f"Expected file: {ds.filename} ({size}, {sha})."


def _manual_instructions(ds: RemoteDataset, to: Path) -> str:
    """What to do when this machine cannot download the file itself."""
    return (
        f"Download {ds.url} in a browser and place {ds.filename} in "
        f"{to.absolute()}/, then re-run the same command. {_expected(ds)}"
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


def _pin_path(zip_path: Path) -> Path:
    """Sidecar file recording the checksum seen on first use (``*.zip.sha256``)."""
    return zip_path.with_name(zip_path.name + ".sha256")


def _read_pin(zip_path: Path) -> str | None:
    """The SHA-256 recorded by an earlier run, if any (``sha256sum`` format)."""
    pin = _pin_path(zip_path)
    if not pin.is_file():
        return None
    return pin.read_text(encoding="utf-8").split()[0].lower()


def _write_pin(zip_path: Path, ds: RemoteDataset) -> None:
    """Trust on first use: record the checksum of the file we got, and say so.

    Used only when the registry has no SHA-256. Later runs verify against the
    recorded value, so at least the file cannot change silently afterwards.
    """
    digest = sha256sum(zip_path)
    size = zip_path.stat().st_size
    _pin_path(zip_path).write_text(f"{digest}  {zip_path.name}\n", encoding="utf-8")
    _say(
        f"No published checksum is known for {ds.filename}. Got {size:,} bytes, "
        f"SHA-256 {digest}; recorded in {_pin_path(zip_path)}. Please compare these "
        f"with the values from the publisher ({ds.url})."
    )


def _fetch(
    ds: RemoteDataset, zip_path: Path, *, urlopen, progress: bool, timeout: float
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

    headers = {"User-Agent": "medgan_nb (python urllib)"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(ds.url, headers=headers)
    to = zip_path.parent
    try:
        response = urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left to send: .part is complete
            return part
        raise DownloadError(
            f"The server answered HTTP {err.code} ({err.reason}) for {ds.url}.\n"
            + _manual_instructions(ds, to)
        ) from err
    except (urllib.error.URLError, OSError) as err:  # includes timeouts
        reason = getattr(err, "reason", err)
        hint = ""
        if isinstance(reason, ssl.SSLCertVerificationError):
            hint = (
                " Python could not verify the server's certificate (this server has "
                "been reported to omit an intermediate certificate)."
            )
        raise DownloadError(
            f"No network access to {ds.url} ({reason}).{hint}\n"
            + _manual_instructions(ds, to)
        ) from err

    with response:
        status = getattr(response, "status", None) or response.getcode()
        length = response.headers.get("Content-Length")
        if status == 206:
            content_range = response.headers.get("Content-Range", "")
            if content_range and not content_range.startswith(f"bytes {offset}-"):
                raise DownloadError(
                    f"The server resumed {ds.url} at the wrong place ({content_range!r}, "
                    f"wanted byte {offset}). Delete {part} and re-run."
                )
            mode = "ab"
        elif status == 200:
            if offset:
                _say("The server does not support resuming; starting over.")
            offset, mode = 0, "wb"
        else:
            raise DownloadError(
                f"Unexpected HTTP status {status} for {ds.url}.\n"
                + _manual_instructions(ds, to)
            )
        total = offset + int(length) if length is not None else ds.size
        received = 0
        with open(part, mode) as f, tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=ds.filename,
            disable=not progress,
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
    if length is not None and received < int(length):
        raise DownloadError(
            f"The server closed the connection after {offset + received:,} bytes. "
            f"Re-run the same command to resume from {part}."
        )
    return part


def download(
    name: str,
    to: Path,
    *,
    urlopen=urllib.request.urlopen,
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
    sha256 = ds.sha256 or _read_pin(zip_path)

    if zip_path.exists():  # downloaded earlier, or placed here by hand
        try:
            verify(zip_path, ds.size, sha256)
        except DownloadError as err:
            corrupt = _quarantine(zip_path, zip_path)
            raise DownloadError(
                f"{err}\nThe file was kept as {corrupt}. Re-run the same command to "
                f"download it again. {_manual_instructions(ds, to)}"
            ) from err
    else:
        _say(f"Downloading {ds.name} from {ds.url}\nTerms: {ds.terms}")
        part = _fetch(ds, zip_path, urlopen=urlopen, progress=progress, timeout=timeout)
        try:
            verify(part, ds.size, sha256)
        except DownloadError as err:
            corrupt = _quarantine(part, zip_path)
            raise DownloadError(
                f"{err}\nThe downloaded file was kept as {corrupt}. Re-run the same "
                f"command to try again; if it fails the same way, the publisher may "
                f"have changed the archive. {_manual_instructions(ds, to)}"
            ) from err
        os.replace(part, zip_path)

    if sha256 is None:
        _write_pin(zip_path, ds)

    _say(f"Extracting {zip_path} into {to}")
    safe_extract(zip_path, to)
    if not images.is_dir():
        raise DownloadError(
            f"{zip_path} was extracted, but it has no folder {ds.image_dir}. "
            f"The archive layout may have changed; look inside {to}."
        )
    _say(f"Done: {images}\nPlease cite: {ds.citation}")
    return images
