"""`ovozly process FILE...`: the worker's speech pipeline run locally, with a progress bar;
writes NAME.json (the Transcript), NAME.rttm (speaker turns) and NAME.srt per file."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from app.core.errors import OvozlyError
from app.ml.types import SpeakerHints, Stage, Transcript, overall_progress


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "process", help="diarize and transcribe audio files locally (JSON, RTTM, SRT)"
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--out", type=Path, default=Path("."), help="output folder")
    parser.add_argument("--num-speakers", type=int)
    parser.add_argument("--min-speakers", type=int)
    parser.add_argument("--max-speakers", type=int)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm  # type: ignore[import-untyped]

    from app.ml.settings import PipelineSettings
    from app.ml.speech.pipeline import SpeechPipeline

    hints = SpeakerHints(args.num_speakers, args.min_speakers, args.max_speakers)
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    pipeline = SpeechPipeline(PipelineSettings())
    failures = 0
    for path in args.files:
        with tqdm(
            total=100, desc=path.name, unit="%", disable=args.no_progress, file=sys.stderr
        ) as bar:

            def hook(stage: Stage, completed: float, total: float, bar: Any = bar) -> None:
                bar.set_postfix_str(stage.value.lower())
                bar.n = round(100 * overall_progress(stage, completed, total), 1)
                bar.refresh()

            try:
                transcript = pipeline(path, hints=hints, hook=hook)
            except (OvozlyError, ValueError, RuntimeError, OSError) as error:
                failures += 1
                print(f"{path}: {error}", file=sys.stderr)
                continue
            bar.n = 100
        stem = out_dir / path.stem
        write_outputs(transcript, stem, file_id=path.stem)
        print(f"{path} -> {stem}.json, .rttm, .srt", file=sys.stderr)
    return 1 if failures else 0


def write_outputs(transcript: Transcript, stem: Path, *, file_id: str) -> None:
    stem.with_suffix(".json").write_text(
        json.dumps(transcript_to_dict(transcript), ensure_ascii=False, indent=2) + "\n",
        encoding="utf-8",
    )
    stem.with_suffix(".rttm").write_text(to_rttm(transcript, file_id), encoding="utf-8")
    stem.with_suffix(".srt").write_text(to_srt(transcript), encoding="utf-8")


def transcript_to_dict(transcript: Transcript) -> dict[str, Any]:
    """The transcript as JSON-ready data; voice embeddings are biometric and stay out."""
    data = dataclasses.asdict(dataclasses.replace(transcript, speaker_embeddings=None))
    data.pop("speaker_embeddings", None)
    return data


def to_rttm(transcript: Transcript, file_id: str) -> str:
    """One SPEAKER line per speaker turn of the diarization (RTTM: type file channel onset
    duration ... speaker); the segments' times when the transcript carries no turns."""
    spans = [
        (turn.speaker, turn.start_s, turn.end_s, turn.channel) for turn in transcript.speaker_turns
    ] or [(s.speaker, s.start_s, s.end_s, s.channel) for s in transcript.segments]
    lines = []
    for speaker, start_s, end_s, channel_index in sorted(spans, key=lambda span: span[1]):
        channel = 1 if channel_index is None else channel_index + 1
        duration = max(end_s - start_s, 0.0)
        lines.append(
            f"SPEAKER {file_id} {channel} {start_s:.3f} {duration:.3f} "
            f"<NA> <NA> {speaker} <NA> <NA>"
        )
    return "\n".join(lines) + ("\n" if lines else "")


def to_srt(transcript: Transcript) -> str:
    blocks = []
    for index, segment in enumerate(transcript.segments, start=1):
        blocks.append(
            f"{index}\n{_srt_time(segment.start_s)} --> {_srt_time(segment.end_s)}\n"
            f"[{segment.speaker}] {segment.text}\n"
        )
    return "\n".join(blocks)


def _srt_time(seconds: float) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"
