"""The speaker embeddings voiceprints learn from: from the diarizer on mono calls, from the
agent channel on stereo calls, none at all with VOICEPRINTS_ENABLED off, never in the outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from app.cli.process import write_outputs
from app.ml.settings import PipelineSettings
from app.ml.speech.pipeline import SpeechPipeline
from app.ml.types import SpeakerHints


def test_mono_calls_carry_one_unit_centroid_per_speaker_and_outputs_never_show_them(
    pipeline: SpeechPipeline, test_audio_dir: Path, tmp_path: Path
) -> None:
    transcript = pipeline(test_audio_dir / "pyannote_sample.wav", hints=SpeakerHints(2))
    embeddings = transcript.speaker_embeddings
    assert embeddings is not None and embeddings.model
    assert set(embeddings.vectors) == {t.speaker for t in transcript.speaker_turns}
    for vector in embeddings.vectors.values():
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4
    write_outputs(transcript, tmp_path / "sample", file_id="sample")
    written = json.loads((tmp_path / "sample.json").read_text())
    assert "speaker_embeddings" not in written
    assert "speaker_turns" in written


def test_stereo_calls_embed_the_agent_channel_only(
    pipeline: SpeechPipeline, test_audio_dir: Path
) -> None:
    transcript = pipeline(test_audio_dir / "fasterwhisper_stereo_diarization.wav")
    assert transcript.channels == 2
    embeddings = transcript.speaker_embeddings
    assert embeddings is not None
    agent = next(
        speaker
        for speaker, channel in transcript.speaker_channels.items()
        if channel == pipeline.settings.agent_channel
    )
    assert set(embeddings.vectors) == {agent}
    assert embeddings.speech_s[agent] > 1.0


def test_with_voiceprints_off_no_embedding_leaves_the_pipeline(
    pipeline: SpeechPipeline, test_audio_dir: Path
) -> None:
    off = SpeechPipeline(PipelineSettings(_env_file=None, device="cpu", voiceprints_enabled=False))
    mono = off(test_audio_dir / "picovoice_falcon_test.wav")
    stereo = off(test_audio_dir / "fasterwhisper_stereo_diarization.wav")
    assert mono.speaker_turns and mono.speaker_embeddings is None
    assert stereo.speaker_embeddings is None
