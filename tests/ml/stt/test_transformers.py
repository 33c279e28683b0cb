"""The transformers backend on a tiny random Whisper the test builds (no download)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.ml.stt import SttError
from app.ml.stt.languages import WHISPER_LANGUAGES
from app.ml.stt.transformers_backend import TransformersStt
from tests.ml.stt.conftest import assert_words_well_formed, load_audio, speech_regions
from tests.ml.stt.tiny_whisper import build_tiny_whisper

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def multilingual_whisper(tmp_path_factory: pytest.TempPathFactory) -> TransformersStt:
    directory = build_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper"), multilingual=True)
    return TransformersStt.load(str(directory), batch_size=4)


def test_random_whisper_returns_ordered_words_inside_regions(
    multilingual_whisper: TransformersStt, test_audio_dir: Path
) -> None:
    """The text is noise from random weights; loading, generation and word alignment are real."""
    audio = load_audio(test_audio_dir / "openai_whisper_jfk.flac")
    regions = speech_regions(audio)

    result = multilingual_whisper.transcribe(audio, regions=regions, language="en")

    assert result.words, "the random model still decodes tokens up to max_length"
    assert result.language == "en" and result.language_probability == 1.0
    assert_words_well_formed(result.words, regions)
    assert all(0.0 <= w.start_s <= len(audio) / 16_000 for w in result.words)


def test_language_is_voted_over_the_call(
    multilingual_whisper: TransformersStt, test_audio_dir: Path
) -> None:
    audio = load_audio(test_audio_dir / "openai_whisper_jfk.flac")
    regions = speech_regions(audio)

    detected = multilingual_whisper.detect_language(audio, regions)

    assert detected is not None
    language, probability = detected
    assert language in WHISPER_LANGUAGES
    assert 0.0 < probability <= 1.0
    # No speech: nothing to detect, no language reported.
    assert multilingual_whisper.transcribe(audio, regions=[], language=None).language is None


def test_unknown_local_model_and_offline_id_give_actionable_errors(tmp_path: Path) -> None:
    with pytest.raises(SttError, match="ovozly models fetch") as raised:
        TransformersStt.load("openai/whisper-large-v3", models_dir=tmp_path)
    assert str(tmp_path / "openai" / "whisper-large-v3") in str(raised.value)
    with pytest.raises(SttError, match="could not load"):
        TransformersStt.load(str(tmp_path))
