"""The speech pipeline end to end on real recordings (bundled models, CPU)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pyannote.core import Annotation, Segment
from pyannote.metrics.diarization import DiarizationErrorRate

from app.core.enums import SpeakerRole
from app.ml.diarization import speaker_embedder
from app.ml.diarization.local import LocalDiarizer
from app.ml.speech.audio import decode_audio
from app.ml.speech.pipeline import SpeechPipeline
from app.ml.types import SpeakerHints, Stage

pytestmark = pytest.mark.slow


def reference(path: Path) -> Annotation:
    annotation = Annotation()
    for line in path.read_text().splitlines():
        fields = line.split()
        start, duration = float(fields[3]), float(fields[4])
        annotation[Segment(start, start + duration)] = fields[7]
    return annotation


def local_diarizer(pipeline: SpeechPipeline) -> LocalDiarizer:
    """The `local` backend (mono calls default to `neural`, tested in tests/ml/diarization)."""
    return LocalDiarizer(pipeline.vad, speaker_embedder("cpu"))


@pytest.mark.parametrize(
    ("hints", "expected"),
    [
        (SpeakerHints(num_speakers=1), {1}),
        (SpeakerHints(num_speakers=3), {3}),
        (SpeakerHints(num_speakers=4), {4}),
        (SpeakerHints(min_speakers=3), {3, 4, 5, 6, 7, 8}),
        (SpeakerHints(max_speakers=1), {1}),
        (SpeakerHints(min_speakers=2, max_speakers=2), {2}),
    ],
)
def test_local_diarizer_honours_hints_exactly(
    pipeline: SpeechPipeline, test_audio_dir: Path, hints: SpeakerHints, expected: set[int]
) -> None:
    diarizer = local_diarizer(pipeline)
    audio = decode_audio(test_audio_dir / "pyannote_sample.wav")
    result = diarizer(audio, hints=hints)
    assert len(result.speakers) in expected


def test_local_diarizer_finds_two_speakers_on_a_phone_call(
    pipeline: SpeechPipeline, test_audio_dir: Path
) -> None:
    audio = decode_audio(test_audio_dir / "pyannote_sample.wav")
    result = local_diarizer(pipeline)(audio, hints=SpeakerHints())
    assert len(result.speakers) == 2
    hypothesis = Annotation()
    for turn in result.turns:
        hypothesis[Segment(turn.start_s, turn.end_s)] = turn.speaker
    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    der = metric(reference(test_audio_dir / "pyannote_sample.rttm"), hypothesis)
    # Measured 17.1 %; the bound leaves room for thread-count numerics, not for regressions.
    assert der < 0.20


def test_stereo_call_is_diarized_by_channel(pipeline: SpeechPipeline, test_audio_dir: Path) -> None:
    stages: list[Stage] = []
    transcript = pipeline(
        test_audio_dir / "fasterwhisper_stereo_diarization.wav",
        hook=lambda stage, done, total: stages.append(stage),
    )
    assert transcript.channels == 2
    assert transcript.speaker_channels == {"SPEAKER_00": 0, "SPEAKER_01": 1}
    by_channel = {
        channel: " ".join(s.text for s in transcript.segments if s.channel == channel).lower()
        for channel in (0, 1)
    }
    assert "wizard" in by_channel[0] and "horizon" not in by_channel[0]
    assert "horizon" in by_channel[1] and "wizard" not in by_channel[1]
    roles = {s.channel: s.role for s in transcript.segments}
    assert roles == {0: SpeakerRole.AGENT, 1: SpeakerRole.CUSTOMER}
    # The two parties overlap in time and both are kept.
    first = [min(s.start_s for s in transcript.segments if s.channel == c) for c in (0, 1)]
    assert abs(first[0] - first[1]) < 1.0
    assert stages[0] == Stage.DECODING
    assert stages.index(Stage.DIARIZING) < stages.index(Stage.TRANSCRIBING)


def test_stereo_with_hints_channels_cannot_meet_falls_back_to_mono(
    pipeline: SpeechPipeline, test_audio_dir: Path
) -> None:
    transcript = pipeline(
        test_audio_dir / "fasterwhisper_stereo_diarization.wav",
        hints=SpeakerHints(num_speakers=1),
    )
    assert transcript.channels == 1
    assert {s.speaker for s in transcript.segments} == {"SPEAKER_00"}


def test_mono_call_segments_are_single_speaker_with_words(
    pipeline: SpeechPipeline, test_audio_dir: Path
) -> None:
    transcript = pipeline(test_audio_dir / "pyannote_sample.wav", hints=SpeakerHints(2))
    assert transcript.language == "en"
    assert transcript.duration_s == pytest.approx(30.0, abs=0.01)
    assert {s.speaker for s in transcript.segments} == {"SPEAKER_00", "SPEAKER_01"}
    text = " ".join(s.text for s in transcript.segments).lower()
    assert "new jersey" in text and "chicago" in text
    for segment in transcript.segments:
        assert segment.start_s <= segment.end_s
        # A speaker turn the speech-to-text found no words in stays, with empty text.
        if segment.text:
            assert segment.text.split()[0] == segment.words[0].text.strip()
    starts = [s.start_s for s in transcript.segments]
    assert starts == sorted(starts)


def test_dual_mono_flac_is_one_channel(pipeline: SpeechPipeline, test_audio_dir: Path) -> None:
    transcript = pipeline(test_audio_dir / "openai_whisper_jfk.flac", hints=SpeakerHints(1))
    assert transcript.channels == 1
    text = " ".join(s.text for s in transcript.segments).lower()
    assert "ask not what your country can do for you" in text.replace(",", "")


ISOLATED = """
import argparse, sys
from app.cli.process import register
parser = argparse.ArgumentParser()
register(parser.add_subparsers())
args = parser.parse_args(["process", *sys.argv[1:]])
sys.exit(args.handler(args))
"""


@pytest.mark.network_isolated
def test_process_runs_with_networking_disabled(test_audio_dir: Path, tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare is not available to create a network namespace")
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.decode().strip()}")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NUM_SPEAKERS": "", "DIARIZATION_BACKEND": "auto"}
    env = {k: v for k, v in env.items() if v != ""}
    result = subprocess.run(
        [
            unshare,
            "-n",
            sys.executable,
            "-c",
            ISOLATED,
            str(test_audio_dir / "picovoice_falcon_test.wav"),
            "--out",
            str(tmp_path),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rttm = (tmp_path / "picovoice_falcon_test.rttm").read_text().splitlines()
    assert {line.split()[7] for line in rttm} == {"SPEAKER_00", "SPEAKER_01", "SPEAKER_02"}
    srt = (tmp_path / "picovoice_falcon_test.srt").read_text()
    assert "-->" in srt
    assert (tmp_path / "picovoice_falcon_test.json").read_text().startswith("{")
