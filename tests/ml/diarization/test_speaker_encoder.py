"""The speaker encoder is Resemblyzer's network and mel front end, built without importing
Resemblyzer or librosa (seconds of worker start-up): the same numbers as theirs."""

from __future__ import annotations

import numpy as np
import pytest

from app.ml.diarization.local import ResemblyzerEmbedder, mel_basis


def test_the_mel_filters_are_librosas() -> None:
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(sr=16_000, n_fft=400, n_mels=40)
    assert mel_basis().shape == expected.shape == (40, 201)
    np.testing.assert_allclose(mel_basis(), expected, rtol=1e-5, atol=1e-8)


def test_the_encoder_gives_resemblyzers_embeddings() -> None:
    torch = pytest.importorskip("torch")
    resemblyzer = pytest.importorskip("resemblyzer")
    theirs = resemblyzer.VoiceEncoder("cpu", verbose=False)
    ours = ResemblyzerEmbedder("cpu")
    mels = np.random.default_rng(0).random((3, 150, 40)).astype(np.float32)
    with torch.inference_mode():
        expected = theirs(torch.from_numpy(mels)).numpy()
    np.testing.assert_allclose(ours.embed(mels), expected, rtol=1e-5, atol=1e-6)


def test_the_encoder_loads_without_importing_resemblyzer_or_librosa() -> None:
    import subprocess
    import sys

    probe = (
        "import sys; from app.ml.diarization.local import ResemblyzerEmbedder; "
        "ResemblyzerEmbedder('cpu'); "
        "print(sorted(m for m in ('resemblyzer', 'librosa', 'scipy.signal', 'numba') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    )
    assert result.stdout.strip() == "[]"
