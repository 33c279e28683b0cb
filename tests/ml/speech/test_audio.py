"""Decoding: every upload format, resampling, dual-mono folding, bounded memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.ml.speech.audio import SAMPLE_RATE, AudioDecodeError, decode_audio, is_dual_mono
from tests.factories import encode_audio, noise, sine

FORMATS = [
    # (suffix, container format, codec, sample rate)
    ("wav", "wav", "pcm_s16le", 44_100),
    ("flac", "flac", "flac", 48_000),
    ("mp3", "mp3", "libmp3lame", 44_100),
    ("ogg", "ogg", "libopus", 48_000),
    ("m4a", "ipod", "aac", 44_100),
    ("webm", "webm", "libopus", 48_000),
]


@pytest.mark.parametrize(("suffix", "fmt", "codec", "rate"), FORMATS)
def test_formats_decode_to_16k_float_per_channel(
    tmp_path: Path, suffix: str, fmt: str, codec: str, rate: int
) -> None:
    path = tmp_path / f"tone.{suffix}"
    # Left 440 Hz, right 660 Hz: two different signals, like an agent and a customer.
    stereo = np.stack([sine(440, 2.0, rate), sine(660, 2.0, rate)])
    encode_audio(path, stereo, container=fmt, codec=codec, sample_rate=rate)
    audio = decode_audio(path)
    assert audio.samples.dtype == np.float32
    assert audio.sample_rate == SAMPLE_RATE
    assert audio.channels == 2 and not audio.dual_mono
    assert audio.duration_s == pytest.approx(2.0, abs=0.1)
    # Each channel keeps its own tone after resampling: the spectral peak says which.
    for channel, frequency in ((0, 440), (1, 660)):
        spectrum = np.abs(np.fft.rfft(audio.samples[channel, 4000:20000]))
        peak_hz = np.argmax(spectrum) * SAMPLE_RATE / 16000
        assert peak_hz == pytest.approx(frequency, abs=5)


def test_dual_mono_folds_with_gain_difference(tmp_path: Path) -> None:
    left = noise(2.0, level=0.2, seed=0)
    path = tmp_path / "dual.flac"
    encode_audio(
        path, np.stack([left, 0.5 * left]), container="flac", codec="flac", sample_rate=SAMPLE_RATE
    )
    audio = decode_audio(path)
    assert audio.dual_mono and audio.channels == 1 and audio.source_channels == 2


def test_real_dual_mono_and_true_stereo(test_audio_dir: Path) -> None:
    jfk = decode_audio(test_audio_dir / "openai_whisper_jfk.flac")
    assert jfk.dual_mono and jfk.channels == 1
    assert jfk.source_sample_rate == 44_100
    assert jfk.duration_s == pytest.approx(11.0, abs=0.05)
    stereo = decode_audio(test_audio_dir / "fasterwhisper_stereo_diarization.wav")
    assert not stereo.dual_mono and stereo.channels == 2
    assert not is_dual_mono(stereo.samples)


def test_undecodable_file_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp3"
    path.write_bytes(b"this is not audio" * 100)
    with pytest.raises(AudioDecodeError):
        decode_audio(path)


MEMORY_PROBE = """
import sys, tracemalloc
from pathlib import Path
from app.ml.speech.audio import decode_audio
tracemalloc.start()
audio = decode_audio(Path(sys.argv[1]))
_, peak = tracemalloc.get_traced_memory()
print(audio.samples.nbytes, peak)
"""


def test_decoding_memory_is_the_output_plus_a_constant(tmp_path: Path) -> None:
    """Ten minutes of mono FLAC: numpy's peak allocation stays near the output size (no
    list of chunks concatenated at the end, no float64 copies)."""
    rate = 8_000
    seconds = 600
    path = tmp_path / "long.flac"
    samples = noise(seconds, level=0.1, seed=1, sample_rate=rate)[None]
    encode_audio(path, samples, container="flac", codec="flac", sample_rate=rate)
    del samples
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    output_bytes, peak_bytes = map(int, result.stdout.split())
    assert output_bytes == pytest.approx(4 * SAMPLE_RATE * seconds, rel=0.01)
    assert peak_bytes < output_bytes * 1.1 + 8 * 2**20


RESIDENT_PROBE = """
import sys
from pathlib import Path
import numpy as np
import psutil
from app.ml.speech.audio import decode_audio
process = psutil.Process()
before = process.memory_info().rss
spilled = decode_audio(Path(sys.argv[1]))
after_decode = process.memory_info().rss - before
checksum = float(np.abs(spilled.samples, dtype=np.float64).sum())
after_read = process.memory_info().rss - before
spilled.release_pages()
after_release = process.memory_info().rss - before
print(spilled.file_backed, spilled.samples.nbytes, after_decode, after_read, after_release)
in_memory = decode_audio(Path(sys.argv[1]), spill_after_s=float("inf"))
print(in_memory.file_backed, np.array_equal(in_memory.samples, spilled.samples), checksum)
"""


def test_a_long_call_is_decoded_into_a_file_its_pages_released_as_stages_move_on(
    tmp_path: Path,
) -> None:
    """Memory bounded by design: a call over SPILL_AFTER_S lives in a file-backed
    array, the same samples as in memory, and only what was touched since the last release
    is resident."""
    rate = 8_000
    seconds = 720
    path = tmp_path / "twelve-minutes.flac"
    samples = noise(seconds, level=0.1, seed=2, sample_rate=rate)[None]
    encode_audio(path, samples, container="flac", codec="flac", sample_rate=rate)
    del samples
    result = subprocess.run(
        [sys.executable, "-c", RESIDENT_PROBE, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    spilled_line, memory_line = result.stdout.splitlines()
    file_backed, nbytes, after_decode, after_read, after_release = spilled_line.split()
    assert file_backed == "True"
    mb = 2**20
    assert int(nbytes) == 4 * SAMPLE_RATE * seconds  # 44 MB of samples
    assert int(after_decode) < 16 * mb  # decoding released as it went
    assert int(after_read) > int(nbytes) * 0.8  # reading it all maps it all in ...
    assert int(after_release) < 16 * mb  # ... and the release hands it back
    in_memory_file_backed, equal, _ = memory_line.split()
    assert (in_memory_file_backed, equal) == ("False", "True")
