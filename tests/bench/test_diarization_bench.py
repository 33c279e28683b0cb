"""The assembled two-party calls' reference marks speech where a reader speaks, not where
the recording is merely loud: a LibriSpeech reader's pauses between lines (with room noise
and clicks within 35 dB of the peak) are no speech, the words are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.ml.speech.audio import decode_audio
from bench.diarization import voiced_stretches

pytestmark = pytest.mark.slow


def test_the_reference_leaves_a_readers_line_pauses_out(test_audio_dir: Path) -> None:
    clip = decode_audio(test_audio_dir / "resemblyzer_libri_1688-142285-0000.flac").mono()
    stretches = [(start / 16000, end / 16000) for start, end in voiced_stretches(clip)]
    speech_s = sum(end - start for start, end in stretches)
    # Four line ends of the poem, 0.7 to 1.2 s each where the aligned words say nobody
    # speaks (the level alone marks the whole 15 s clip as speech).
    assert len(stretches) >= 4, stretches
    assert 0.6 * clip.size / 16000 < speech_s < 0.9 * clip.size / 16000, stretches
    for pause_s in (3.7, 6.4, 10.1, 13.6):
        assert not any(start <= pause_s < end for start, end in stretches), (pause_s, stretches)
    # The words themselves are speech.
    for word_s in (1.5, 4.6, 8.3, 11.5):
        assert any(start <= word_s < end for start, end in stretches), (word_s, stretches)
    assert np.all(np.diff(np.ravel(stretches)) >= 0)
