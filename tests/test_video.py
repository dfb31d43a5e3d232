"""Video enhancement (`medgan_nb.inference.video`): frames, size, rate and audit line kept; atomic, refusing,
resuming; bad files named and skippable; the guard's strength smoothed over time; the CLI prints frames/s."""
import json
import logging
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image
from test_enhance import checkpoint  # noqa: F401 - the tiny checkpoint fixture, reused

from medgan_nb.cli import main
from medgan_nb.inference import NonFiniteOutputError, enhance
from medgan_nb.inference.video import (GUARD_TIME_CONSTANT_S, VideoLoadError, smooth_strengths, smoothing_factor,
                                       video_codec, write_clip)
from medgan_nb.models import Guard, load_generator
from medgan_nb.utils import file_sha256

av = pytest.importorskip("av", reason="PyAV is not installed (pip install av)")

FRAMES, W, H, FPS = 12, 96, 64, 10


def clean_frame(i, w=W, h=H):
    """A smooth colour pattern that drifts a little from frame to frame, uint8 (h, w, 3)."""
    yy, xx = np.mgrid[0:h, 0:w] / 12.0
    img = np.stack([np.sin(xx + i / 5) * np.cos(yy), np.cos(xx + yy), np.sin(xx * yy / 6)], axis=2) * 0.35 + 0.5
    return np.rint(img * 255).astype(np.uint8)


def noisy_frame(i, w=W, h=H):
    noise = np.random.default_rng(i).normal(0, 20, (h, w, 3))
    return np.clip(clean_frame(i, w, h) + noise, 0, 255).astype(np.uint8)


def write_video(path, frames, fps=FPS):
    """`frames` (uint8 (h, w, 3)) as an H.264 video with near-lossless quality."""
    return write_clip(path, frames, fps, crf=1)


def read_video(path):
    """(frames as uint8 (n, h, w, 3), width, height, average frame rate)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(s)])
        return frames, s.width, s.height, s.average_rate


@pytest.fixture
def clip(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    return write_video(folder / "clip.mp4", [noisy_frame(i) for i in range(FRAMES)])


def luma(rgb):
    return rgb.astype(np.float64) @ [0.299, 0.587, 0.114]


def read_audit(out):
    return [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]


def test_video_keeps_frames_size_rate_and_is_restored_as_its_frames_are(clip, checkpoint, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    assert enhance(clip, out, checkpoint, device="cpu", quiet=True) == [out / "clip.mp4"]
    frames, w, h, rate = read_video(out / "clip.mp4")
    source, *_ = read_video(clip)
    assert (len(frames), w, h, rate) == (FRAMES, W, H, Fraction(FPS))
    assert sorted(p.name for p in out.iterdir()) == ["audit.jsonl", "clip.mp4"]     # no temp file left

    [r] = read_audit(out)
    assert r["output_sha256"] == file_sha256(out / "clip.mp4") and r["input_sha256"] == file_sha256(clip)
    assert (r["frames"], r["width"], r["height"], r["fps"], r["video"]) == (FRAMES, W, H, FPS, True)
    assert r["checkpoint_sha256"] == file_sha256(checkpoint) and r["codec"] == video_codec()
    assert r["frames_per_s"]["restoration"] > 0 and r["frames_per_s"]["end_to_end"] > 0

    # frame 5 restored as an image (the decoded input frame as a PNG) is the video's frame 5, up to H.264
    Image.fromarray(source[5]).save(tmp_path / "frame5.png")
    [png] = enhance(tmp_path / "frame5.png", tmp_path / "png", checkpoint, device="cpu", quiet=True)
    as_image = luma(np.asarray(Image.open(png)))      # luma: yuv420p keeps only a quarter of the chroma
    error = {k: np.abs(luma(frames[k]) - as_image).mean() for k in (4, 5, 6)}
    change = np.abs(luma(source[5]) - as_image).mean()
    assert change > 3                                   # the model changed the frame measurably (8-bit levels)
    assert error[5] < 4.5                               # CRF 17 on frames this noisy: ~3.5 levels (lossless: 1.3)
    assert error[5] < min(error[4], error[6]) / 3       # and it is that frame, not its neighbours (~15)


def test_existing_output_is_refused_resume_keeps_it_overwrite_redoes_it(clip, checkpoint, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    enhance(clip, out, checkpoint, device="cpu", quiet=True)
    before, log_before = file_sha256(out / "clip.mp4"), (out / "audit.jsonl").read_text()
    with pytest.raises(FileExistsError, match="clip.mp4"):
        enhance(clip, out, checkpoint, device="cpu", quiet=True)
    assert enhance(clip, out, checkpoint, device="cpu", quiet=True, resume=True) == []
    assert file_sha256(out / "clip.mp4") == before and (out / "audit.jsonl").read_text() == log_before
    assert sorted(p.name for p in out.iterdir()) == ["audit.jsonl", "clip.mp4"]
    assert enhance(clip, out, checkpoint, device="cpu", quiet=True, overwrite=True) == [out / "clip.mp4"]
    assert len(read_audit(out)) == 2


def test_corrupt_and_empty_videos_are_named_and_skipped_with_skip_bad(clip, checkpoint, tmp_path,  # noqa: F811
                                                                       caplog):
    folder = clip.parent
    (folder / "sub").mkdir()
    whole = clip.read_bytes()
    (folder / "sub" / "cut.mov").write_bytes(whole[:len(whole) // 2])       # truncated: no moov atom
    with pytest.raises(VideoLoadError, match="cut.mov"):
        enhance(folder, tmp_path / "out1", checkpoint, device="cpu", quiet=True)
    # as for images, the files before the bad one are written (with their audit lines); of it, nothing is left
    assert sorted(p.name for p in (tmp_path / "out1").iterdir()) == ["audit.jsonl", "clip.mp4"]
    with caplog.at_level(logging.WARNING, logger="medgan_nb.inference"):
        written = enhance(folder, tmp_path / "out2", checkpoint, device="cpu", quiet=True, on_error="skip")
    assert written == [tmp_path / "out2" / "clip.mp4"]
    assert "skipped 1 of 2" in caplog.text and "cut.mov" in caplog.text
    assert [r["output"] for r in read_audit(tmp_path / "out2")] == [str(written[0].resolve())]

    empty = tmp_path / "empty.avi"
    with av.open(str(empty), "w") as c:                 # a valid AVI whose video stream has no frames
        s = c.add_stream("mpeg4", rate=FPS)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        c.start_encoding()
    with pytest.raises(VideoLoadError, match=r"empty\.avi: the video has no frames"):
        enhance(empty, tmp_path / "out3", checkpoint, device="cpu", quiet=True)
    assert not (tmp_path / "out3").exists() or not list((tmp_path / "out3").iterdir())
    (tmp_path / "junk.avi").write_bytes(b"RIFF not really a video")
    with pytest.raises(VideoLoadError, match=r"junk\.avi.*cannot be read as a video"):
        enhance(tmp_path / "junk.avi", tmp_path / "out4", checkpoint, device="cpu", quiet=True)


def test_smooth_strengths_bounds_the_change_from_frame_to_frame():
    raw = np.tile([0.0, 1.0], 50)                       # a guard that flips every frame
    alpha = smoothing_factor(25, GUARD_TIME_CONSTANT_S)
    assert alpha == pytest.approx(1 - np.exp(-1 / 12.5))
    s = smooth_strengths(raw, fps=25)
    assert s.shape == raw.shape and s[0] == 0.0
    assert np.abs(np.diff(s)).max() <= alpha + 1e-12 and np.abs(np.diff(raw)).max() == 1
    assert np.ptp(s[50:]) < alpha                       # the flicker is damped to under alpha ...
    assert s[50:].mean() == pytest.approx(0.5, abs=0.05)   # ... around the mean strength
    step = smooth_strengths(np.r_[np.zeros(5), np.ones(25)], fps=25)    # a real change is followed:
    assert step[-1] == pytest.approx(1 - np.exp(-25 / 12.5)) and step[-1] > 0.85     # 86 % after 1 s
    assert np.all(smooth_strengths(np.zeros(10), 25) == 0)              # never needed: exactly the input
    assert np.array_equal(smooth_strengths(raw, 25, seconds=0), raw)


def test_guard_strength_and_label_reach_every_frame(clip, checkpoint, tmp_path):  # noqa: F811
    generator = load_generator(checkpoint, "cpu")[0]
    generator.guard = Guard()
    out = tmp_path / "out"
    enhance(clip, out, generator=generator, device="cpu", quiet=True, label=True)
    [r] = read_audit(out)
    g = r["guard"]
    assert g["time_constant_s"] == GUARD_TIME_CONSTANT_S and r["label"] is True
    assert 0 <= g["strength"]["min"] <= g["strength"]["mean"] <= g["strength"]["max"] <= 1
    assert g["raw_strength"]["max"] == 1.0              # noise std 20/255 is far above the guard's threshold
    frames, *_ = read_video(out / "clip.mp4")
    assert (frames[:, 1, 1].max(axis=1) < 60).all()    # the label's dark box in every frame's corner


def test_odd_sizes_are_padded_and_recorded(tmp_path, checkpoint):  # noqa: F811
    odd = tmp_path / "odd.mkv"                          # lossless FFV1 in 4:4:4 stores 63×47 as it is
    with av.open(str(odd), "w") as c:
        s = c.add_stream("ffv1", rate=FPS)
        s.width, s.height, s.pix_fmt = 63, 47, "yuv444p"
        for i in range(3):
            f = av.VideoFrame.from_ndarray(noisy_frame(i, 63, 47), format="rgb24").reformat(format="yuv444p")
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    written = enhance(odd, tmp_path / "out", checkpoint, device="cpu", quiet=True)
    frames, w, h, _ = read_video(written[0])
    [r] = read_audit(tmp_path / "out")
    assert (r["width"], r["height"], r["encoded_width"], r["encoded_height"]) == (63, 47, 64, 48)
    assert (len(frames), w, h) == (3, 64, 48)
    edge = np.abs(luma(frames[:, :, 63]) - luma(frames[:, :, 62])).mean()       # the repeated edge column
    inner = np.abs(luma(frames[:, :, 62]) - luma(frames[:, :, 61])).mean()
    assert edge < inner / 3                             # ~3 (H.264) against ~12 (noise)


def test_cli_enhances_a_video_and_prints_frames_per_second(clip, checkpoint, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "cli"
    assert main(["enhance", str(clip), "--checkpoint", str(checkpoint), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"{FRAMES} frames, {W}×{H} at {FPS} frames/s" in printed and "frames/s end to end" in printed
    assert "wrote 1 AI-enhanced video to" in printed
    assert (out / "clip.mp4").is_file()
    assert main(["enhance", str(clip), "--checkpoint", str(checkpoint), "--out", str(out), "--quiet"]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_without_pyav_the_error_says_how_to_install_it(clip, checkpoint, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setitem(__import__("sys").modules, "av", None)       # `import av` raises ImportError
    with pytest.raises(ImportError, match="pip install av"):
        enhance(clip, tmp_path / "out", checkpoint, device="cpu", quiet=True)
    assert not (tmp_path / "out" / "clip.mp4").exists()


def test_a_frame_the_model_makes_not_finite_stops_the_video_and_leaves_no_file(clip, checkpoint, tmp_path,  # noqa: F811
                                                                              monkeypatch):
    import medgan_nb.inference.video as video
    calls = []

    def nan_after_three(generator, rgb, **kw):          # frames 1-3 pass, frame 4 comes back NaN
        calls.append(1)
        return rgb * (float("nan") if len(calls) == 4 else 1.0)
    monkeypatch.setattr(video, "enhance_array", nan_after_three)
    with pytest.raises(NonFiniteOutputError, match=r"clip\.mp4, frame 4: the model gave \d+ of \d+ values"):
        enhance(clip, tmp_path / "out", checkpoint, device="cpu", quiet=True)
    assert not list((tmp_path / "out").glob("*.mp4*")) and not (tmp_path / "out" / "audit.jsonl").exists()
