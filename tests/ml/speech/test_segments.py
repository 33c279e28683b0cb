"""Segments that keep the diarization: word-speaker assignment, overlap, wordless speech,
and, on real audio, segments scoring the diarizer's own DER."""

from __future__ import annotations

from pathlib import Path

from app.cli.process import to_rttm
from app.ml.diarization.base import SpeakerTurn
from app.ml.speech.pipeline import SpeechPipeline
from app.ml.speech.segments import LanguageSpan, segments_from_turns
from app.ml.types import SpeakerHints, Word


def words(*spans: tuple[str, float, float]) -> list[Word]:
    return [Word(text, start, end) for text, start, end in spans]


def test_a_turn_is_split_where_the_speaker_changes() -> None:
    # The speech-to-text read one run of words; the diarizer says the speaker changed at 2 s.
    turns = [SpeakerTurn("SPEAKER_00", 0.0, 2.0), SpeakerTurn("SPEAKER_01", 2.0, 4.0)]
    ws = words(("so", 0.2, 0.6), ("I", 0.7, 1.0), ("yes", 2.2, 2.6), ("right", 2.8, 3.5))
    segments = segments_from_turns(turns, ws)
    assert [(s.speaker, s.text, s.start_s, s.end_s) for s in segments] == [
        ("SPEAKER_00", "so I", 0.0, 2.0),
        ("SPEAKER_01", "yes right", 2.0, 4.0),
    ]


def test_a_word_goes_to_the_speaker_holding_most_of_it_else_the_nearest_turn() -> None:
    turns = [SpeakerTurn("SPEAKER_00", 0.0, 1.0), SpeakerTurn("SPEAKER_01", 1.0, 3.0)]
    ws = words(("across", 0.8, 1.6), ("later", 3.4, 3.6))
    segments = segments_from_turns(turns, ws)
    assert [(s.speaker, s.text) for s in segments] == [
        ("SPEAKER_00", ""),
        ("SPEAKER_01", "across later"),
    ]


def test_overlapped_speech_gives_overlapping_segments_of_both_speakers() -> None:
    turns = [SpeakerTurn("SPEAKER_00", 0.0, 3.0), SpeakerTurn("SPEAKER_01", 2.0, 5.0)]
    ws = words(("well", 0.5, 1.0), ("mm", 2.1, 2.3), ("no", 3.5, 4.0))
    segments = segments_from_turns(turns, ws)
    assert [(s.speaker, s.start_s, s.end_s) for s in segments] == [
        ("SPEAKER_00", 0.0, 3.0),
        ("SPEAKER_01", 2.0, 5.0),
    ]
    assert segments[0].end_s > segments[1].start_s


def test_speech_with_no_words_stays_a_segment_with_speaker_times_and_language() -> None:
    turns = [SpeakerTurn("SPEAKER_00", 0.0, 2.0), SpeakerTurn("SPEAKER_01", 2.5, 6.0)]
    spans = [
        LanguageSpan("SPEAKER_00", 0.0, 2.0, "en"),
        LanguageSpan("SPEAKER_01", 2.5, 6.0, "uz"),
    ]
    ws = words(("hello", 0.3, 0.8))
    segments = segments_from_turns(turns, ws, languages=spans)
    assert [(s.speaker, s.text, s.start_s, s.end_s, s.language) for s in segments] == [
        ("SPEAKER_00", "hello", 0.0, 2.0, "en"),
        ("SPEAKER_01", "", 2.5, 6.0, "uz"),
    ]


def test_a_long_pause_cuts_a_turn_without_changing_what_it_covers() -> None:
    turns = [SpeakerTurn("SPEAKER_00", 0.0, 10.0)]
    segments = segments_from_turns(turns, words(("a", 0.5, 1.0), ("b", 8.0, 8.5)))
    assert [(s.text, s.start_s, s.end_s) for s in segments] == [("a", 0.0, 4.5), ("b", 4.5, 10.0)]


def _der(reference_rttm: Path, spans: list[tuple[str, float, float]]) -> float:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    reference = Annotation()
    for i, line in enumerate(reference_rttm.read_text().splitlines()):
        f = line.split()
        reference[Segment(float(f[3]), float(f[3]) + float(f[4])), i] = f[7]
    hypothesis = Annotation()
    for i, (speaker, start, end) in enumerate(spans):
        hypothesis[Segment(start, end), i] = speaker
    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    return float(metric(reference, hypothesis))


def test_segments_score_the_diarizers_own_der_and_the_rttm_is_the_diarization(
    pipeline: SpeechPipeline, test_audio_dir: Path
) -> None:
    transcript = pipeline(test_audio_dir / "pyannote_sample.wav", hints=SpeakerHints())
    turns = [(t.speaker, t.start_s, t.end_s) for t in transcript.speaker_turns]
    segments = [(s.speaker, s.start_s, s.end_s) for s in transcript.segments]
    reference = test_audio_dir / "pyannote_sample.rttm"
    assert turns
    assert _der(reference, segments) <= _der(reference, turns) + 0.02
    rttm = [line.split() for line in to_rttm(transcript, "x").splitlines()]
    expected = sorted(turns, key=lambda t: t[1])
    assert [f[7] for f in rttm] == [speaker for speaker, _, _ in expected]
    assert [round(float(f[3]), 3) for f in rttm] == [round(start, 3) for _, start, _ in expected]
    text = " ".join(s.text for s in transcript.segments).lower()
    assert "new jersey" in text


def test_a_turn_is_split_where_its_speaker_changes_language() -> None:
    turns = [SpeakerTurn("SPEAKER_00", 0.0, 9.0)]
    spans = [
        LanguageSpan("SPEAKER_00", 0.0, 4.0, "uz"),
        LanguageSpan("SPEAKER_00", 5.0, 9.0, "ru"),
    ]
    ws = words(("привет", 5.5, 6.0))
    segments = segments_from_turns(turns, ws, languages=spans)
    assert [(s.text, s.start_s, s.end_s, s.language) for s in segments] == [
        ("", 0.0, 4.5, "uz"),
        ("привет", 4.5, 9.0, "ru"),
    ]
