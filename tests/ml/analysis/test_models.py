"""The analysis models' loaders: the sentence encoder equals sentence-transformers' own run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.ml.analysis.models import SentenceEncoder, minilm, minilm_path

SENTENCES = [
    "I want to cancel my subscription",
    "My internet has been down since yesterday",
    "Hi",
    "Could you please tell me why my bill is higher this month than it was last month, "
    "because nobody told me about any change to my plan and I have been a customer for years",
    "Я хочу вернуть деньги",
]


@pytest.mark.slow
def test_the_encoder_equals_sentence_transformers() -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(minilm_path(), device="cpu").encode(
        SENTENCES, batch_size=2, normalize_embeddings=True, show_progress_bar=False
    )
    ours = SentenceEncoder(minilm_path()).encode(SENTENCES, batch_size=2)
    assert ours.shape == (len(SENTENCES), 384)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_the_encoder_truncates_like_sentence_transformers_and_handles_no_sentences() -> None:
    encoder = minilm()
    assert encoder.max_seq_length == 256
    long = " ".join(["word"] * 2000)
    (row,) = encoder.encode([long])
    assert np.isfinite(row).all()
    assert encoder.encode([]).shape == (0, 384)
    unnormalised = encoder.encode(SENTENCES[:1], normalize_embeddings=False)
    assert float(np.linalg.norm(unnormalised)) > 1.5


def test_a_sentence_is_encoded_alike_alone_and_in_a_padded_batch() -> None:
    encoder = minilm()
    together = encoder.encode(SENTENCES, batch_size=len(SENTENCES))
    (alone,) = encoder.encode([SENTENCES[2]])
    np.testing.assert_allclose(alone, together[2], atol=2e-6)


def test_a_directory_that_is_not_bert_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "whisper", "hidden_act": "gelu"}')
    with pytest.raises(ValueError, match="not a BERT encoder"):
        SentenceEncoder(str(tmp_path))


def test_loading_the_encoder_does_not_import_sentence_transformers() -> None:
    code = (
        "import sys\n"
        "from app.ml.analysis.models import minilm\n"
        "minilm().encode(['warm up'])\n"
        "heavy = sorted(m for m in ('sentence_transformers', 'transformers', 'sklearn',"
        " 'pandas', 'scipy') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""
