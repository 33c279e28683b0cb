"""Tiny ONNX speech models in the layouts onnx-asr loads, built by the tests themselves.

The graphs have no trained weights: each frame's logits are a fixed function of its feature
energy, so a burst of noise emits one token at its start and silence emits blank. That is
enough to exercise the real loading (file resolution, config, vocabulary), feature
extraction, CTC decoding and token timestamps of onnx-asr end to end, with nothing
downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18


def _energy_ctc_graph(
    *,
    features: int,
    subsampling: int,
    vocab_size: int,
    token: int,
    blank: int,
    names: dict[str, str],
) -> onnx.ModelProto:
    """features [B, F, T] -> log-probabilities [B, ceil(T/subsampling), V]: a frame whose mean
    normalised feature is positive emits `token`, any other frame emits `blank`."""
    weights = np.zeros((1, vocab_size), dtype=np.float32)
    weights[0, token] = 8.0
    weights[0, blank] = -8.0
    bias = np.full((vocab_size,), -20.0, dtype=np.float32)
    bias[token] = 0.0
    bias[blank] = 0.0
    initializers = [
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(bias, "bias"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "mel_axis"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "starts"),
        numpy_helper.from_array(np.array([2**62], dtype=np.int64), "ends"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "time_axis"),
        numpy_helper.from_array(np.array([subsampling], dtype=np.int64), "steps"),
    ]
    nodes = [
        helper.make_node(
            "Slice", [names["features"], "starts", "ends", "time_axis", "steps"], ["sub"]
        ),
        helper.make_node("ReduceMean", ["sub", "mel_axis"], ["energy"], keepdims=1),
        helper.make_node("Transpose", ["energy"], ["energy_t"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["energy_t", "weights"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["logits"]),
        helper.make_node("LogSoftmax", ["logits"], [names["output"]], axis=-1),
        helper.make_node("Identity", [names["lengths"]], ["unused_lengths"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_energy_ctc",
        [
            helper.make_tensor_value_info(
                names["features"], TensorProto.FLOAT, ["B", features, "T"]
            ),
            helper.make_tensor_value_info(names["lengths"], TensorProto.INT64, ["B"]),
        ],
        [
            helper.make_tensor_value_info(
                names["output"], TensorProto.FLOAT, ["B", "T2", vocab_size]
            )
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_nemo_ctc(directory: Path, *, word: str = "salom") -> Path:
    """A NeMo Conformer CTC export (`model.onnx`, `vocab.txt`, `config.json`) whose only
    word is `word` (one SentencePiece piece with the word marker)."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab = [f"\u2581{word}", "\u2581", "<blk>"]
    model = _energy_ctc_graph(
        features=80,
        subsampling=8,
        vocab_size=len(vocab),
        token=0,
        blank=len(vocab) - 1,
        names={"features": "audio_signal", "lengths": "length", "output": "logprobs"},
    )
    onnx.save(model, str(directory / "model.onnx"))
    (directory / "vocab.txt").write_text(
        "".join(f"{token} {index}\n" for index, token in enumerate(vocab)), encoding="utf-8"
    )
    (directory / "config.json").write_text(
        json.dumps(
            {"model_type": "nemo-conformer-ctc", "features_size": 80, "subsampling_factor": 8}
        ),
        encoding="utf-8",
    )
    return directory


def build_gigaam_v3_ctc(directory: Path, *, word: str = "да") -> Path:
    """A GigaAM v3 CTC export (`v3_ctc.onnx`, `v3_vocab.txt`) with no config.json, so a route
    must name its type. Each burst emits `word` as one piece with the word marker."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab = ["\u2581", f"\u2581{word}", "<blk>"]
    model = _energy_ctc_graph(
        features=64,
        subsampling=4,
        vocab_size=len(vocab),
        token=1,
        blank=len(vocab) - 1,
        names={"features": "features", "lengths": "feature_lengths", "output": "log_probs"},
    )
    onnx.save(model, str(directory / "v3_ctc.onnx"))
    (directory / "v3_vocab.txt").write_text(
        "".join(f"{token} {index}\n" for index, token in enumerate(vocab)), encoding="utf-8"
    )
    return directory


def bursts(
    spans_s: list[tuple[float, float]],
    *,
    duration_s: float,
    sample_rate: int = 16_000,
    seed: int = 0,
) -> np.ndarray:
    """Silence with white-noise bursts over `spans_s`."""
    rng = np.random.default_rng(seed)
    audio = np.zeros(round(duration_s * sample_rate), dtype=np.float32)
    for start, end in spans_s:
        first, last = round(start * sample_rate), round(end * sample_rate)
        audio[first:last] = rng.normal(0.0, 0.3, last - first).astype(np.float32)
    return audio
