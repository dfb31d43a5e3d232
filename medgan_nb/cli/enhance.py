"""``python -m medgan_nb enhance``: restore an image, a video or a folder into labelled, audited outputs.

`cmd_enhance(args)` calls `medgan_nb.inference.files.enhance` with a checkpoint, a shipped model or the
default one, and prints where the outputs and ``audit.jsonl`` went. Returns the exit status: 0, or 1 with
the reason on stderr for an unusable checkpoint or image, an existing output without ``--overwrite`` or
``--resume``, a missing input, an output folder another enhance is writing to, a file error (a full disk), or
a backend whose package is not installed. Messages name the command's flags where the library names its
arguments (`as_flags`), and every path is printed as valid text (`path_text`). For each video written, one line
gives its frames and frames/s (restoring only, and end to end), read from its audit line (`video_lines`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..config import INFERENCE_BACKENDS
from .common import GUARD_HELP, chosen_model

FLAGS = {"overwrite=True": "--overwrite", "resume=True": "--resume", "another out_dir": "another --out"}


def as_flags(message: str) -> str:
    """A message of `medgan_nb.inference.files.enhance` with its argument names replaced by this command's flags."""
    for argument, flag in FLAGS.items():
        message = message.replace(argument, flag)
    return message


def cmd_enhance(args: argparse.Namespace) -> int:
    from ..data.decode import ImageLoadError
    from ..inference.files import OutputBusyError, enhance
    from ..inference.outputs import path_text
    from ..models.checkpoint import CheckpointError
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        written = enhance(args.input, args.out, args.checkpoint, model=chosen_model(args), device=args.device,
                          label=args.label, overwrite=args.overwrite, resume=args.resume, tile=args.tile,
                          on_error="skip" if args.skip_bad else "raise", backend=args.backend,
                          record_source_name=args.record_source_name, quiet=args.quiet, guard=not args.no_guard,
                          gan_weight=args.gan_weight)
    except (CheckpointError, ImageLoadError, OSError, ValueError, ImportError, OutputBusyError) as e:
        print(path_text(f"error: {as_flags(str(e))}"), file=sys.stderr)
        return 1
    for line in video_lines(Path(args.out) / "audit.jsonl", written):
        print(path_text(line))
    print(path_text(f"wrote {written_text(written)} to {args.out} (audit log: {Path(args.out) / 'audit.jsonl'})"))
    return 0


def written_text(written: list[Path]) -> str:
    """What `enhance` wrote, by kind: "3 AI-enhanced images", "1 AI-enhanced video", "2 … images and 1 video"."""
    videos = sum(p.suffix == ".mp4" for p in written)
    counts = [(n, noun) for n, noun in ((len(written) - videos, "image"), (videos, "video")) if n]
    parts = [f"{n} {noun}{'s' * (n != 1)}" for n, noun in counts or [(0, "image")]]
    return f"{parts[0].replace(' ', ' AI-enhanced ', 1)}{''.join(' and ' + p for p in parts[1:])}"


def video_lines(audit_log: Path, written: list[Path]) -> list[str]:
    """One line per video among `written`: its frames, size, frame rate and frames/s, from its last audit record."""
    if not any(p.suffix == ".mp4" for p in written):
        return []
    from ..inference.audit import read_records
    from ..inference.outputs import path_text
    videos = {path_text(p.resolve()) for p in written if p.suffix == ".mp4"}
    records = {r.get("output"): r for _, r in read_records(audit_log) if r.get("video")}
    lines = []
    for output in sorted(videos):
        r = records.get(output)
        if r:
            rate = r["frames_per_s"]
            lines.append(f"{output}: {r['frames']} frames, {r['width']}×{r['height']} at {r['fps']:g} frames/s; "
                         f"{rate['restoration']:g} frames/s restoring, {rate['end_to_end']:g} frames/s end to end")
    return lines


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``enhance`` command and its options."""
    en = sub.add_parser("enhance", help="enhance an image, a video or a folder; outputs are labelled and audited")
    en.add_argument("input", help="an image, a video (.mp4 .mov .avi .mkv .webm .m4v .mpg .mpeg: "
                                   "written as <stem>.mp4, H.264, no audio; needs pip install av) or a folder "
                                   "(searched recursively)")
    en_weights = en.add_mutually_exclusive_group()
    en_weights.add_argument("--checkpoint", help="a checkpoint file or a run folder "
                                                 "(without it or --model: the default shipped model)")
    en_weights.add_argument("--model", metavar="NAME", help="a shipped model (python -m medgan_nb models)")
    en.add_argument("--gan-weight", type=float, metavar="A",
                    help="with a GAN model (--model sharp): 0 = its smooth L1 parent, 1 = the GAN model, between: "
                         "their weights interpolated (sharper texture as A grows; PSNR falls)")
    en.add_argument("--out", required=True, help="output folder (PNG/MP4 files + audit.jsonl)")
    en.add_argument("--label", action="store_true", help="burn a visible 'AI-enhanced' label into a corner")
    en_rerun = en.add_mutually_exclusive_group()
    en_rerun.add_argument("--overwrite", action="store_true",
                          help="redo every output (the new audit lines supersede the old ones)")
    en_rerun.add_argument("--resume", action="store_true",
                          help="finish an interrupted run: keep the outputs that match their audit line, redo the rest")
    en.add_argument("--record-source-name", action="store_true",
                    help="also write each input's relative path into its output PNG's metadata (off by default: "
                         "file names often hold patient identifiers; the input's SHA-256 is always written and "
                         "the local audit.jsonl always keeps the path)")
    en.add_argument("--skip-bad", action="store_true",
                    help="skip unreadable images or videos and DICOM files of another modality than the model's "
                         "(counted) instead of stopping")
    en.add_argument("--tile", type=int, default=512, help="tile size for large images (default 512; for 720p/1080p "
                                                           "video, 1280/1920 (one tile per frame) is faster)")
    en.add_argument("--no-guard", action="store_true", help=GUARD_HELP)
    en.add_argument("--device", default="auto")
    en.add_argument("--backend", default="auto", choices=INFERENCE_BACKENDS,
                    help="inference engine; auto: on the CPU the fastest one measured here for these weights "
                         "(measured for large jobs only, then remembered in the user cache), else torch")
    en.add_argument("--quiet", action="store_true")
    en.set_defaults(func=cmd_enhance)
