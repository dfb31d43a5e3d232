"""Enhance a video file frame by frame, as `medgan_nb.inference.files.enhance` enhances an image.

Contract (``enhance("clip.mp4", out_dir)``, or a folder holding videos, calls `enhance_video_file` for each):

- Input: a file named ``*.mp4 .mov .avi .mkv .webm .m4v .mpg .mpeg`` (`VIDEO_EXTENSIONS`) that FFmpeg (PyAV,
  ``pip install av``) can decode; its first video stream is read. Every frame is decoded to RGB uint8
  (H, W, 3), converted to float32 in [0, 1] and restored exactly as an image is: `enhance_array` (reflect-padded,
  tiled for frames larger than ``tile``), then the weights' guard (`medgan_nb.models.guard.Guard`) blends the
  correction in by ``strength`` in [0, 1], then, with ``label=True``, the visible "AI-enhanced" mark is burnt
  into the top-left corner of every frame; the result is rounded back to uint8.
- Guard over time: the guard measures each frame (its noise and the correction's size) and gives a raw strength,
  but a frame near its thresholds would switch between "restored" and "as it was" from one frame to the next: a
  visible flicker. So the strength applied is an exponential moving average of the raw ones
  (`smooth_strengths`, `StrengthSmoother`) with time constant `GUARD_TIME_CONSTANT_S` = 0.5 s: per frame it
  moves a fraction ``alpha = 1 - exp(-1 / (fps * 0.5))`` of the way to the raw strength (0.077 at 25 frames/s),
  so it changes by at most ``alpha`` per frame (a full switch takes about 1 s to reach 86 %), an alternation at
  half the frame rate is damped to under ``alpha / (2 - alpha)`` of its size, and a real change of scene
  (the scope entering a dark, noisy region) is followed within a second. It starts at the first frame's raw
  strength, so a video that never needs the model stays exactly as decoded (strength 0 gives the input frame).
- Output: ``out_dir/<rel>.mp4`` (the input's relative path, suffix .mp4), H.264 (``libx264``, CRF `CRF`,
  preset `PRESET`) where the PyAV wheel has it, else MPEG-4 part 2 (``mpeg4``, qscale 2); pixel format yuv420p,
  so players everywhere show it. Same width and height as the input: yuv420p needs even sizes, so an odd width
  or height is padded by one repeated edge column or row, logged and recorded in the audit line
  (``encoded_width``, ``encoded_height``). Same frame rate and timestamps: each frame keeps its presentation
  time (in the input stream's time base, from the first frame's). The container's metadata says the video is
  AI-enhanced and names the SHA-256 of the input file and of the weights.
- Not copied: audio, subtitle and data streams (an enhanced video is for looking at, and a procedure's sound
  track may carry speech); a log line counts what was left out. Metadata of the input is not copied either.
- Atomic: the video is encoded into a temporary file in the output folder (`medgan_nb.utils.files.atomic_write`)
  and renamed onto ``<stem>.mp4`` only when the last frame is written, so an error or Ctrl-C leaves no partial
  output. Existing outputs, ``overwrite`` and ``resume`` work as for images (`enhance`).
- Audit: one line in ``out_dir/audit.jsonl`` per video (`enhance`'s fields where they apply: input path and
  SHA-256, output path and SHA-256, weights, time, ...; plus ``frames``, ``fps``, ``width``, ``height``,
  ``codec``, the guard's raw and applied strength as min / mean / max, and ``frames_per_s`` restoring only and
  end to end).
- Speed: a tqdm bar counts frames; at the end one log line gives frames processed and frames/s (restoration only:
  model + guard; end to end: decode + restore + encode). ``python -m benchmarks --only video`` measures it.
- Errors: `VideoLoadError` (an `ImageLoadError`, so ``on_error="skip"`` / ``--skip-bad`` skips and counts it)
  names the file for an unreadable or corrupt video, one without a video stream, and one with zero frames (an
  error, not an empty output); ImportError saying ``pip install av`` when PyAV is missing; ValueError for a model
  that is not an RGB endoscopy model.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..data.decode import ImageLoadError
from ..models.runner import enhance_array
from ..utils.files import atomic_write, file_sha256
from ..utils.images import from_numpy_images, to_numpy_images
from .audit import output_record
from .outputs import DESCRIPTION, burn_label, check_finite, path_text

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
GUARD_TIME_CONSTANT_S = 0.5   # the guard strength's smoothing over time (see the module docstring)
CRF = 17                      # libx264 constant rate factor: visually lossless for most content
PRESET = "veryfast"           # libx264 speed/size trade-off: encoding stays a small share of the time per frame
FALLBACK_QSCALE = 2           # mpeg4 (no libx264 in the wheel): the highest usual quality


class VideoLoadError(ImageLoadError):
    """A video file that cannot be used (unreadable, corrupt, no video stream, no frames); names the file."""


def is_video(path: str | Path) -> bool:
    """Whether `path` is named like a video (`VIDEO_EXTENSIONS`, any case)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _av() -> Any:
    """The PyAV module, imported on first use; ImportError with the fix when it is missing."""
    try:
        import av
    except ImportError as e:
        raise ImportError("enhancing videos needs PyAV (FFmpeg bindings): pip install av (the tested version is "
                          "in requirements.txt)") from e
    return av


# ------------------------------------------------------------ guard over time
def smoothing_factor(fps: float, seconds: float = GUARD_TIME_CONSTANT_S) -> float:
    """alpha = 1 - exp(-1 / (fps * seconds)): the share of the way to a new raw strength taken per frame
    (1 when `seconds` is 0: no smoothing)."""
    if not fps > 0 or seconds < 0:
        raise ValueError(f"need fps > 0 and seconds >= 0, got fps={fps}, seconds={seconds}")
    return 1.0 if seconds == 0 else 1.0 - math.exp(-1.0 / (fps * seconds))


@dataclass
class StrengthSmoother:
    """An exponential moving average of per-frame guard strengths with time constant `seconds` at `fps`;
    `update(raw)` returns the strength to apply to that frame. The first frame's raw strength is taken as is."""
    fps: float
    seconds: float = GUARD_TIME_CONSTANT_S
    value: float | None = None
    alpha: float = field(init=False)

    def __post_init__(self):
        self.alpha = smoothing_factor(self.fps, self.seconds)

    def update(self, raw: float) -> float:
        self.value = float(raw) if self.value is None else self.value + self.alpha * (float(raw) - self.value)
        return self.value


def smooth_strengths(raw: Sequence[float], fps: float, seconds: float = GUARD_TIME_CONSTANT_S) -> np.ndarray:
    """The strengths `StrengthSmoother` applies to frames whose guard measured `raw` (float64, same length):
    each differs from the one before by at most ``smoothing_factor(fps, seconds)`` times the raw range."""
    smoother = StrengthSmoother(fps, seconds)
    return np.array([smoother.update(r) for r in raw], dtype=np.float64)


# ------------------------------------------------------------ one frame
class _Label:
    """`burn_label` for every frame of one size, at the cost of two array operations on the corner:
    burn_label(p) = p * mult + add with add = burn_label(0) and mult = burn_label(1) - burn_label(0)."""

    def __init__(self, h: int, w: int):
        add = burn_label(np.zeros((h, w, 1), np.float32))
        mult = burn_label(np.ones((h, w, 1), np.float32)) - add
        rows, cols = np.nonzero((np.abs(mult[..., 0] - 1) > 1e-7) | (add[..., 0] > 1e-7))
        self.h, self.w = (int(rows.max()) + 1, int(cols.max()) + 1) if len(rows) else (0, 0)
        self.add, self.mult = add[:self.h, :self.w], mult[:self.h, :self.w]

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        corner = pixels[:self.h, :self.w]
        corner *= self.mult
        corner += self.add
        return pixels


class FrameRestorer:
    """Restores RGB uint8 frames (H, W, 3) one after the other as `enhance` restores an image, with the guard's
    strength smoothed over time (`StrengthSmoother`); keeps the raw and applied strengths and the seconds spent.

    run: the loaded weights of an `enhance` call (`medgan_nb.inference.files._open_weights`: generator or its fast
    backend, guard or None, tile, device, label).
    """

    def __init__(self, run: Any, fps: float, seconds: float = GUARD_TIME_CONSTANT_S, name: str = "video"):
        channels = getattr(run.generator, "in_channels", 3)
        if channels != 3 or getattr(run, "modality", "endoscopy") != "endoscopy":
            raise ValueError(f"{name}: videos need an RGB endoscopy model, not a {channels}-channel "
                             f"{getattr(run, 'modality', '?')} model")
        self.run, self.name = run, name
        self.smoother = StrengthSmoother(fps, seconds)
        self.raw: list[float] = []
        self.applied: list[float] = []
        self.seconds = 0.0
        self._label: _Label | None = None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        rgb = frame.astype(np.float32) / 255
        restored = enhance_array(self.run.generator, rgb, tile=self.run.tile, device=self.run.device, progress=False)
        check_finite(restored, f"{self.name}, frame {len(self.raw) + 1}")
        guard = self.run.guard
        if guard is None:
            pixels, raw, strength = restored, 1.0, 1.0
        else:
            x, y = (from_numpy_images(a)[None] for a in (rgb, restored))
            raw = float(guard.strength(x, y)[0])
            strength = self.smoother.update(raw)
            pixels = rgb if strength == 0 else to_numpy_images(guard.blend(x, y, strength, out=y)[0])
        if self.run.label:
            if self._label is None:
                self._label = _Label(*pixels.shape[:2])
            pixels = self._label(pixels if pixels is not rgb else rgb.copy())
        out = np.rint(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
        self.raw.append(raw)
        self.applied.append(strength)
        self.seconds += time.perf_counter() - start
        return out


# ------------------------------------------------------------ reading
@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says about its first video stream (frames: 0 when the header does not say)."""
    width: int
    height: int
    fps: float
    rate: Fraction
    time_base: Fraction | None
    frames: int
    other_streams: dict[str, int]


def _failed(src: Path, e: BaseException) -> VideoLoadError:
    return VideoLoadError(f"{path_text(src)}: cannot be read as a video ({type(e).__name__}: {e}); the file may be "
                          "corrupt, truncated or not a video")


@contextlib.contextmanager
def open_video(src: str | Path) -> Iterator[tuple[Any, Any, VideoInfo]]:
    """(container, its first video stream, `VideoInfo`) of `src`; `VideoLoadError` naming it when FFmpeg cannot
    open it or it has no video stream."""
    av, src = _av(), Path(src)
    try:
        container = av.open(str(src), "r")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as e:
        raise _failed(src, e) from None
    try:
        if not container.streams.video:
            raise VideoLoadError(f"{path_text(src)}: has no video stream (audio only, or not a video)")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0 or not stream.width or not stream.height:
            raise VideoLoadError(f"{path_text(src)}: the video stream has no usable frame rate or size "
                                 f"({stream.width}×{stream.height} at {rate} frames/s)")
        others: dict[str, int] = {}
        for s in container.streams:
            if s.index != stream.index:
                others[s.type] = others.get(s.type, 0) + 1
        info = VideoInfo(stream.width, stream.height, float(rate), Fraction(rate), stream.time_base,
                         int(stream.frames or 0), others)
        yield container, stream, info
    finally:
        container.close()


def frames_of(src: Path, container: Any, stream: Any) -> Iterator[tuple[np.ndarray, int | None, Any]]:
    """(RGB uint8 (H, W, 3), pts, time base) of every frame of `stream`, in presentation order;
    `VideoLoadError` naming `src` when decoding fails."""
    av = _av()
    frames = container.decode(stream)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except (av.FFmpegError, ValueError) as e:
            raise _failed(src, e) from None
        yield frame.to_ndarray(format="rgb24"), frame.pts, frame.time_base


def video_pixels(src: str | Path) -> int:
    """Width × height × frames from the header (0 where it cannot be read); for `enhance`'s choice of backend."""
    try:
        with open_video(src) as (_, _, info):
            return info.width * info.height * info.frames
    except (VideoLoadError, ImportError):
        return 0


def written_by_us(path: str | Path) -> bool:
    """Whether the video `path` says in its metadata that `enhance` wrote it (False where it cannot be read)."""
    try:
        with _av().open(str(path), "r") as container:
            return "medgan_nb:ai_enhanced=true" in str(container.metadata.get("comment", ""))
    except Exception:                                   # noqa: BLE001 - anything unreadable is not ours
        return False


def check_video(src: str | Path) -> VideoInfo:
    """`VideoInfo` of a video whose first frame decodes; `VideoLoadError` naming it otherwise (zero frames too).
    `enhance` calls it before a video's job so that ``on_error="skip"`` can skip a bad one as it skips images."""
    src = Path(src)
    with open_video(src) as (container, stream, info):
        if next(frames_of(src, container, stream), None) is None:
            raise VideoLoadError(f"{path_text(src)}: the video has no frames; nothing to enhance")
    return info


# ------------------------------------------------------------ writing
def video_codec() -> str:
    """"libx264" where this PyAV wheel has it, else "mpeg4"."""
    return "libx264" if "libx264" in _av().codecs_available else "mpeg4"


def write_clip(path: str | Path, frames: Sequence[np.ndarray], fps: int = 25, crf: int = CRF) -> Path:
    """Frames (uint8 (H, W, 3), even sizes) as an H.264 (or MPEG-4) clip at `fps`, quality `crf` (0-51, lower is
    better; for MPEG-4 a qscale of max(1, crf // 8)): for making test and benchmark clips."""
    av = _av()
    h, w = frames[0].shape[:2]
    codec = video_codec()
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": str(crf)} if codec == "libx264" else {"qscale": str(max(1, crf // 8))}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return Path(path)


def _even(frame: np.ndarray) -> np.ndarray:
    """`frame` with its last row and/or column repeated to even height and width (yuv420p needs them)."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _summary(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 5), "mean": round(float(np.mean(values)), 5), "max": round(max(values), 5)}


def enhance_video_file(run: Any, src: Path, rel: str, dst: Path, seconds: float = GUARD_TIME_CONSTANT_S
                       ) -> dict[str, Any]:
    """Enhance the video `src` to `dst` (written atomically, see the module docstring); returns its audit record.
    `rel`: its path relative to the input root (written into the file only with ``run.record_source_name``)."""
    av = _av()
    started = time.perf_counter()
    input_sha256 = file_sha256(src)
    codec = video_codec()
    with open_video(src) as (container, stream, info):
        if info.other_streams:
            log.info("%s: not copied: %s (the output has the enhanced video only)", path_text(src),
                     ", ".join(f"{n} {kind} stream(s)" for kind, n in sorted(info.other_streams.items())))
        width, height = info.width + info.width % 2, info.height + info.height % 2
        if (width, height) != (info.width, info.height):
            log.warning("%s: %d×%d padded to %d×%d by repeating the last column/row: H.264 in yuv420p needs even "
                        "sizes", path_text(src), info.width, info.height, width, height)
        restore = FrameRestorer(run, info.fps, seconds, path_text(src))
        with atomic_write(dst) as f, av.open(f, "w", format="mp4") as out:
            out.metadata.update({"title": "AI-enhanced video (medgan_nb)", "description": DESCRIPTION,
                                 "comment": f"medgan_nb:ai_enhanced=true; source_sha256={input_sha256}; "
                                            f"checkpoint_sha256={run.checkpoint_sha256}"
                                            + (f"; model={run.model_name}" if run.model_name else "")
                                            + (f"; source={rel}" if run.record_source_name else "")})
            ostream = out.add_stream(codec, rate=info.rate)
            ostream.width, ostream.height, ostream.pix_fmt = width, height, "yuv420p"
            ostream.options = ({"crf": str(CRF), "preset": PRESET} if codec == "libx264"
                               else {"qscale": str(FALLBACK_QSCALE)})
            if codec == "mpeg4":
                ostream.codec_context.qscale = FALLBACK_QSCALE
            first_pts = last_pts = None
            n = 0
            with tqdm(total=info.frames or None, desc=Path(src).name, unit="frame", leave=False,
                      disable=run.progress is False) as bar:
                for rgb, pts, time_base in frames_of(src, container, stream):
                    if rgb.shape[:2] != (info.height, info.width):
                        raise VideoLoadError(f"{path_text(src)}: frame {n + 1} is {rgb.shape[1]}×{rgb.shape[0]}, "
                                             f"not {info.width}×{info.height}; videos that change size are not "
                                             "supported")
                    frame = av.VideoFrame.from_ndarray(_even(restore(rgb)), format="rgb24")
                    if pts is not None and time_base is not None:
                        first_pts = pts if first_pts is None else first_pts
                        pts -= first_pts
                    else:                                             # no timestamps: one frame per 1/fps
                        time_base = stream.time_base or 1 / info.rate
                        pts = round(n / info.rate / time_base)
                    if last_pts is not None and pts <= last_pts:      # a repeated timestamp (a broken file)
                        pts = last_pts + 1
                    frame.pts, frame.time_base, last_pts = pts, time_base, pts
                    for packet in ostream.encode(frame.reformat(format="yuv420p")):
                        out.mux(packet)
                    n += 1
                    bar.update()
                if n == 0:
                    raise VideoLoadError(f"{path_text(src)}: the video has no frames; nothing to enhance")
                for packet in ostream.encode():
                    out.mux(packet)
    total = time.perf_counter() - started
    rates = {"restoration": round(n / restore.seconds, 3), "end_to_end": round(n / total, 3)}
    log.info("%s: %d frames, %.2f frames/s restoring (model + guard), %.2f frames/s end to end (decode + restore + "
             "encode)", path_text(src), n, rates["restoration"], rates["end_to_end"])
    guard = run.guard
    return {
        **output_record(run, src, dst, input_sha256, info.width, info.height, 3, 8),  # source_name_in_png: here,
        "encoded_width": width,                                                     # in the video's metadata
        "encoded_height": height,
        "video": True,
        "frames": n,
        "fps": round(info.fps, 6),
        "codec": codec,
        "streams_not_copied": info.other_streams,
        "frames_per_s": rates,
        "guard": None if guard is None else {
            **guard.to_dict(), "time_constant_s": seconds,
            "raw_strength": _summary(restore.raw), "strength": _summary(restore.applied)},
    }
