"""The multilingual Whisper base assembled from its two PyPI data packages: joined without
importing them, its hash pinned and checked, and a mismatch refused with what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.ml.settings import PipelineSettings
from app.ml.stt import SttError, load_routed_models
from app.ml.stt.bundled import WHISPER_BASE, assemble, ensure_verified, model_dir, sha256_of
from app.ml.stt.routes import routes_from_settings


def test_assembly_joins_the_parts_and_checks_the_pinned_hash(tmp_path: Path) -> None:
    target = assemble(WHISPER_BASE, tmp_path / "base")
    assert sorted(p.name for p in target.iterdir()) == [
        "config.json",
        "model.bin",
        "tokenizer.json",
        "vocabulary.txt",
    ]
    assert sha256_of(target / "model.bin") == WHISPER_BASE.model_sha256
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging left"


def test_a_model_that_does_not_match_its_hash_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OVOZLY_MODELS_DIR", str(tmp_path))
    directory = assemble(WHISPER_BASE)
    assert directory == model_dir(WHISPER_BASE)
    with (directory / "model.bin").open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(SttError, match="does not match its pinned hash") as caught:
        ensure_verified(WHISPER_BASE)
    assert "make install" in caught.value.message
    # The worker's start-up path names the model and refuses the same way.
    # (An unusual thread count keeps the process's model cache from answering.)
    pipeline_settings = PipelineSettings(_env_file=None, device="cpu", cpu_threads=7)
    with pytest.raises(SttError, match=r"faster-whisper:bundled-base \(for ru\) could not"):
        load_routed_models(routes_from_settings(pipeline_settings), pipeline_settings, "cpu")


def test_a_missing_model_is_assembled_from_the_installed_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OVOZLY_MODELS_DIR", str(tmp_path / "fresh"))
    directory = ensure_verified(WHISPER_BASE)
    assert sha256_of(directory / "model.bin") == WHISPER_BASE.model_sha256
