"""Tests for medgan_nb.data.fetch, all offline: a fake server stands in for the network."""

from __future__ import annotations

import hashlib
import io
import random
import socket
import stat
import urllib.error
import zipfile
from pathlib import Path

import pytest

import medgan_nb.data.fetch as data_fetch
from medgan_nb.data import DATASETS, DownloadError, RemoteDataset, download, safe_extract

URL = "https://example.invalid/kvasir-seg.zip"
MEMBERS = {
    "Kvasir-SEG/images/cju0.jpg": 3000,
    "Kvasir-SEG/images/cju1.jpg": 2500,
    "Kvasir-SEG/masks/cju0.jpg": 1200,
    "Kvasir-SEG/masks/cju1.jpg": 1100,
    "Kvasir-SEG/kavsir_bboxes.json": 40,
}


def make_zip(members: dict[str, int] = MEMBERS) -> bytes:
    """A small stored (uncompressed) zip with the Kvasir-SEG layout and random content."""
    rng = random.Random(0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name, size in members.items():
            zf.writestr(name, bytes(rng.getrandbits(8) for _ in range(size)))
    return buffer.getvalue()


ZIP = make_zip()


@pytest.fixture
def dataset(monkeypatch) -> RemoteDataset:
    """Point the "kvasir-seg" registry entry at the small test zip."""
    ds = RemoteDataset(
        name="kvasir-seg",
        url=URL,
        filename="kvasir-seg.zip",
        size=len(ZIP),
        sha256=hashlib.sha256(ZIP).hexdigest(),
        image_dir="Kvasir-SEG/images",
        citation="test citation",
        terms="test terms",
    )
    monkeypatch.setitem(DATASETS, "kvasir-seg", ds)
    return ds


class FakeResponse:
    """Enough of http.client.HTTPResponse: read(n), status, getcode(), headers, `with`."""

    def __init__(self, body: bytes, status: int = 200, headers: dict | None = None,
                 fail_after: int | None = None):
        self._body = io.BytesIO(body)
        self.status = status
        self.headers = {"Content-Length": str(len(body))} if headers is None else headers
        self._fail_after = fail_after

    def getcode(self) -> int:
        return self.status

    def read(self, n: int = -1) -> bytes:
        if self._fail_after is not None and self._body.tell() >= self._fail_after:
            raise ConnectionResetError("connection reset by peer")
        if self._fail_after is not None:
            n = min(n, self._fail_after - self._body.tell())
        return self._body.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._body.close()


class FakeUrlopen:
    """Callable like urllib.request.urlopen; records requests, replays responses."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.requests = []

    def __call__(self, request, timeout=None):
        self.requests.append(request)
        response = self.responses.pop(0)
        if isinstance(response, BaseException):
            raise response
        return response


def no_network(request, timeout=None):
    raise AssertionError(f"urlopen must not be called (asked for {request.full_url})")


def marker(to: Path) -> Path:
    return to / ".kvasir-seg.zip.complete"


def assert_extracted(to: Path, images: Path) -> None:
    assert images == to / "Kvasir-SEG" / "images"
    assert sorted(p.name for p in images.iterdir()) == ["cju0.jpg", "cju1.jpg"]
    with zipfile.ZipFile(io.BytesIO(ZIP)) as zf:
        for name in MEMBERS:
            assert (to / name).read_bytes() == zf.read(name)
    assert marker(to).is_file()
    assert (to / "kvasir-seg.zip").read_bytes() == ZIP  # the archive is kept
    assert not (to / "kvasir-seg.zip.part").exists()
    assert not list(to.glob(".kvasir-seg.zip.extract-*"))  # temp folder cleaned up


# -------------------------------------------------------------------- download


def test_full_download_verifies_and_extracts(tmp_path, dataset):
    to = tmp_path / "data"
    server = FakeUrlopen(FakeResponse(ZIP))
    images = download("kvasir-seg", to, urlopen=server, progress=False)
    assert_extracted(to, images)
    assert len(server.requests) == 1
    assert server.requests[0].full_url == URL
    assert server.requests[0].get_header("Range") is None


def test_second_call_is_idempotent_and_offline(tmp_path, dataset, monkeypatch):
    to = tmp_path / "data"
    first = download("kvasir-seg", to, urlopen=FakeUrlopen(FakeResponse(ZIP)), progress=False)

    def must_not_run(*args, **kwargs):
        raise AssertionError("an extracted data set must be returned at once")

    monkeypatch.setattr(data_fetch, "safe_extract", must_not_run)
    monkeypatch.setattr(data_fetch, "file_sha256", must_not_run)
    second = download("kvasir-seg", to, urlopen=no_network, progress=False)
    assert first == second
    assert_extracted(to, second)


def test_interrupted_download_resumes_with_range_and_206(tmp_path, dataset):
    to = tmp_path / "data"
    cut = 1000
    with pytest.raises(DownloadError, match="resume"):
        download("kvasir-seg", to, progress=False,
                 urlopen=FakeUrlopen(FakeResponse(ZIP, fail_after=cut)))
    assert (to / "kvasir-seg.zip.part").read_bytes() == ZIP[:cut]
    assert not marker(to).exists()

    rest = ZIP[cut:]
    server = FakeUrlopen(FakeResponse(rest, status=206, headers={
        "Content-Length": str(len(rest)),
        "Content-Range": f"bytes {cut}-{len(ZIP) - 1}/{len(ZIP)}",
    }))
    images = download("kvasir-seg", to, urlopen=server, progress=False)
    assert server.requests[0].get_header("Range") == f"bytes={cut}-"
    assert_extracted(to, images)


def test_server_ignoring_range_restarts_from_zero(tmp_path, dataset):
    to = tmp_path / "data"
    to.mkdir()
    (to / "kvasir-seg.zip.part").write_bytes(b"x" * 1000)  # wrong bytes: must not survive
    server = FakeUrlopen(FakeResponse(ZIP, status=200))
    images = download("kvasir-seg", to, urlopen=server, progress=False)
    assert server.requests[0].get_header("Range") == "bytes=1000-"
    assert_extracted(to, images)


def test_complete_part_file_is_verified_without_network(tmp_path, dataset):
    to = tmp_path / "data"
    to.mkdir()
    (to / "kvasir-seg.zip.part").write_bytes(ZIP)  # interrupted just before the rename
    images = download("kvasir-seg", to, urlopen=no_network, progress=False)
    assert_extracted(to, images)


def test_checksum_mismatch_keeps_file_as_corrupt(tmp_path, dataset):
    to = tmp_path / "data"
    tampered = bytearray(ZIP)
    tampered[100] ^= 0xFF  # same size, different content
    with pytest.raises(DownloadError) as err:
        download("kvasir-seg", to, urlopen=FakeUrlopen(FakeResponse(bytes(tampered))),
                 progress=False)
    message = str(err.value)
    assert "SHA-256 mismatch" in message
    assert dataset.sha256 in message and hashlib.sha256(tampered).hexdigest() in message
    assert (to / "kvasir-seg.zip.corrupt").read_bytes() == bytes(tampered)
    assert "kvasir-seg.zip.corrupt" in message
    assert not (to / "kvasir-seg.zip").exists()
    assert not (to / "kvasir-seg.zip.part").exists()
    assert not (to / "Kvasir-SEG").exists()


def test_size_mismatch_is_reported_and_kept(tmp_path, dataset):
    to = tmp_path / "data"
    short = ZIP[:-10]
    with pytest.raises(DownloadError, match=rf"expected {len(ZIP)} bytes, got {len(short)}"):
        download("kvasir-seg", to, urlopen=FakeUrlopen(FakeResponse(short)), progress=False)
    assert (to / "kvasir-seg.zip.corrupt").read_bytes() == short


def test_second_corrupt_file_does_not_overwrite_the_first(tmp_path, dataset):
    to = tmp_path / "data"
    for _ in range(2):
        with pytest.raises(DownloadError):
            download("kvasir-seg", to, urlopen=FakeUrlopen(FakeResponse(b"junk")),
                     progress=False)
    assert (to / "kvasir-seg.zip.corrupt").read_bytes() == b"junk"
    assert (to / "kvasir-seg.zip.corrupt1").read_bytes() == b"junk"


@pytest.mark.parametrize("failure", [
    urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution")),
    TimeoutError("timed out"),
    ConnectionRefusedError(111, "Connection refused"),
])
def test_offline_fails_fast_with_manual_instructions(tmp_path, dataset, failure):
    to = tmp_path / "data"
    with pytest.raises(DownloadError) as err:
        download("kvasir-seg", to, urlopen=FakeUrlopen(failure), progress=False)
    message = str(err.value)
    assert "No network access" in message
    assert URL in message
    assert str(to) in message
    assert "re-run the same command" in message
    assert dataset.sha256 in message and f"{len(ZIP):,} bytes" in message
    assert not (to / "kvasir-seg.zip").exists()


def test_http_error_is_reported(tmp_path, dataset):
    to = tmp_path / "data"
    not_found = urllib.error.HTTPError(URL, 404, "Not Found", {}, None)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download("kvasir-seg", to, urlopen=FakeUrlopen(not_found), progress=False)


def test_zip_placed_by_hand_is_used_without_network(tmp_path, dataset):
    to = tmp_path / "data"
    to.mkdir()
    (to / "kvasir-seg.zip").write_bytes(ZIP)
    images = download("kvasir-seg", to, urlopen=no_network, progress=False)
    assert_extracted(to, images)


def test_bad_zip_placed_by_hand_is_kept_and_reported(tmp_path, dataset):
    to = tmp_path / "data"
    to.mkdir()
    (to / "kvasir-seg.zip").write_bytes(b"not the archive")
    with pytest.raises(DownloadError, match="size mismatch") as err:
        download("kvasir-seg", to, urlopen=no_network, progress=False)
    assert (to / "kvasir-seg.zip.corrupt").read_bytes() == b"not the archive"
    assert not (to / "kvasir-seg.zip").exists()
    message = str(err.value)  # same verify path and message as a downloaded file
    assert "kvasir-seg.zip.corrupt" in message and "re-run the same command" in message
    assert URL in message and str(to) in message


def test_unknown_name_lists_known_names(tmp_path):
    with pytest.raises(DownloadError, match="kvasir-seg"):
        download("no-such-set", tmp_path, urlopen=no_network, progress=False)


def test_unknown_checksum_is_recorded_on_first_use(tmp_path, dataset, monkeypatch, capsys):
    monkeypatch.setitem(DATASETS, "kvasir-seg",
                        RemoteDataset(**{**dataset.__dict__, "sha256": None, "size": None}))
    to = tmp_path / "data"
    download("kvasir-seg", to, urlopen=FakeUrlopen(FakeResponse(ZIP)), progress=False)
    digest = hashlib.sha256(ZIP).hexdigest()
    assert (to / "kvasir-seg.zip.sha256").read_text() == f"{digest}  kvasir-seg.zip\n"
    assert digest in capsys.readouterr().err

    # A later run verifies against the recorded value: a swapped file is caught.
    (to / ".kvasir-seg.zip.complete").unlink()
    (to / "kvasir-seg.zip").write_bytes(ZIP[::-1])
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        download("kvasir-seg", to, urlopen=no_network, progress=False)


def test_empty_checksum_record_is_ignored_and_rewritten(tmp_path, dataset, monkeypatch):
    monkeypatch.setitem(DATASETS, "kvasir-seg",
                        RemoteDataset(**{**dataset.__dict__, "sha256": None, "size": None}))
    to = tmp_path / "data"
    to.mkdir()
    (to / "kvasir-seg.zip.sha256").write_text("")  # e.g. a run killed while writing it
    images = download("kvasir-seg", to, urlopen=FakeUrlopen(FakeResponse(ZIP)), progress=False)
    assert_extracted(to, images)
    digest = hashlib.sha256(ZIP).hexdigest()
    assert (to / "kvasir-seg.zip.sha256").read_text() == f"{digest}  kvasir-seg.zip\n"


def test_range_not_satisfiable_means_part_is_complete(tmp_path, dataset, monkeypatch):
    # Size unknown, so only the server can say the .part file is complete (HTTP 416).
    monkeypatch.setitem(DATASETS, "kvasir-seg", RemoteDataset(**{**dataset.__dict__, "size": None}))
    to = tmp_path / "data"
    to.mkdir()
    (to / "kvasir-seg.zip.part").write_bytes(ZIP)
    server = FakeUrlopen(urllib.error.HTTPError(URL, 416, "Range Not Satisfiable", {}, None))
    images = download("kvasir-seg", to, urlopen=server, progress=False)
    assert server.requests[0].get_header("Range") == f"bytes={len(ZIP)}-"
    assert_extracted(to, images)


def test_resume_at_wrong_offset_is_refused(tmp_path, dataset):
    to = tmp_path / "data"
    to.mkdir()
    (to / "kvasir-seg.zip.part").write_bytes(ZIP[:1000])
    server = FakeUrlopen(FakeResponse(ZIP[500:], status=206, headers={
        "Content-Length": str(len(ZIP) - 500),
        "Content-Range": f"bytes 500-{len(ZIP) - 1}/{len(ZIP)}",
    }))
    with pytest.raises(DownloadError, match="wrong place"):
        download("kvasir-seg", to, urlopen=server, progress=False)
    assert (to / "kvasir-seg.zip.part").read_bytes() == ZIP[:1000]  # nothing appended
    assert not (to / "kvasir-seg.zip").exists()


def test_connection_closed_early_keeps_part_for_resume(tmp_path, dataset):
    to = tmp_path / "data"
    server = FakeUrlopen(FakeResponse(ZIP[:700], headers={"Content-Length": str(len(ZIP))}))
    with pytest.raises(DownloadError, match="resume"):
        download("kvasir-seg", to, urlopen=server, progress=False)
    assert (to / "kvasir-seg.zip.part").read_bytes() == ZIP[:700]
    assert not (to / "kvasir-seg.zip").exists()


def test_interrupted_extraction_leaves_no_marker_and_next_call_completes(
        tmp_path, dataset, monkeypatch):
    to = tmp_path / "data"
    to.mkdir()
    (to / "kvasir-seg.zip").write_bytes(ZIP)
    real_extract = data_fetch._extract_member
    calls = []

    def crash_on_third(zf, info, target):
        calls.append(info.filename)
        if len(calls) == 3:
            raise KeyboardInterrupt  # like Ctrl-C halfway through
        real_extract(zf, info, target)

    monkeypatch.setattr(data_fetch, "_extract_member", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        download("kvasir-seg", to, urlopen=no_network, progress=False)
    assert not marker(to).exists()
    assert not (to / "Kvasir-SEG").exists()  # nothing half-moved into place
    assert not list(to.glob(".kvasir-seg.zip.extract-*"))

    monkeypatch.setattr(data_fetch, "_extract_member", real_extract)
    images = download("kvasir-seg", to, urlopen=no_network, progress=False)
    assert_extracted(to, images)


def test_extraction_never_overwrites_different_user_files(tmp_path, dataset):
    to = tmp_path / "data"
    (to / "Kvasir-SEG" / "images").mkdir(parents=True)
    mine = to / "Kvasir-SEG" / "images" / "cju0.jpg"
    mine.write_bytes(b"my own edited image")
    (to / "kvasir-seg.zip").write_bytes(ZIP)
    with pytest.raises(DownloadError, match="differ from the archive"):
        download("kvasir-seg", to, urlopen=no_network, progress=False)
    assert mine.read_bytes() == b"my own edited image"
    assert not marker(to).exists()


# ---------------------------------------------------------------- safe_extract


def write_zip(path: Path, infos: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in infos:
            zf.writestr(info, data)
    return path


def symlink_member(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


@pytest.mark.parametrize("evil", [
    ("../evil.txt", b"x"),
    ("ok/../../evil.txt", b"x"),
    ("/abs/evil.txt", b"x"),
    ("C:/evil.txt", b"x"),
    ("..\\evil.txt", b"x"),
    symlink_member("Kvasir-SEG/link", "/etc/passwd"),
])
def test_safe_extract_refuses_escaping_members(tmp_path, evil):
    archive = write_zip(tmp_path / "evil.zip", [("Kvasir-SEG/images/a.jpg", b"fine"), evil])
    dest = tmp_path / "sandbox" / "dest"
    with pytest.raises(DownloadError, match="unsafe archive member"):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == []  # nothing written, not even the safe member
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["dest", "evil.zip", "sandbox"]


def test_safe_extract_returns_extracted_files(tmp_path):
    archive = tmp_path / "k.zip"
    archive.write_bytes(ZIP)
    files = safe_extract(archive, tmp_path / "out")
    assert sorted(files) == sorted(tmp_path / "out" / name for name in MEMBERS)
    assert (tmp_path / "out" / ".k.zip.complete").read_text().splitlines() == list(MEMBERS)


def test_safe_extract_rejects_non_zip(tmp_path):
    archive = tmp_path / "k.zip"
    archive.write_bytes(b"this is not a zip")
    with pytest.raises(DownloadError, match="not a valid zip"):
        safe_extract(archive, tmp_path / "out")


# --------------------------------------------------------------------- helpers


def test_verify(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 1000)
    digest = hashlib.sha256(b"abc" * 1000).hexdigest()
    assert data_fetch.file_sha256(path) == digest
    data_fetch.verify(path, 3000, digest)
    data_fetch.verify(path, 3000, digest.upper())
    data_fetch.verify(path, None, None)
    with pytest.raises(DownloadError, match=str(path)):
        data_fetch.verify(path, 2999, None)
    with pytest.raises(DownloadError, match=f"SHA-256 mismatch: expected {'0' * 64}, got {digest}"):
        data_fetch.verify(path, 3000, "0" * 64)
    with pytest.raises(DownloadError, match="file not found"):
        data_fetch.verify(tmp_path / "missing.bin", None, None)


def test_one_sha256_function_shared_with_checkpoint():
    import medgan_nb.utils.files as utils_files
    assert data_fetch.file_sha256 is utils_files.file_sha256
    assert not hasattr(data_fetch, "sha256sum")


def test_registry_pins_the_published_kvasir_archive():
    ds = DATASETS["kvasir-seg"]
    assert ds.url == "https://datasets.simula.no/downloads/kvasir-seg.zip"
    assert ds.size == 46_227_172
    assert ds.sha256 == "03b30e21d584e04facf49397a2576738fd626815771afbbf788f74a7153478f7"
    assert ds.image_dir == "Kvasir-SEG/images"
    assert "Jha" in ds.citation and "research" in ds.terms
