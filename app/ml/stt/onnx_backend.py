"""Conformer models in ONNX form through onnx-asr: GigaAM v2/v3/Multilingual, NVIDIA NeMo
Conformer/FastConformer (CTC, RNN-T, TDT), on onnxruntime with no torch.

onnx-asr (MIT, PyPI `onnx-asr`) supplies each family's feature extractor and greedy decoder,
so Ovozly only packs speech regions, runs the recogniser and turns its token times into word
times. A route names a directory laid out as onnx-asr expects (the ONNX files, the
vocabulary and usually a `config.json` with `model_type`):

    uz=onnx:/models/gigaam-multilingual
    ru=onnx[gigaam-v3-ctc]:/models/gigaam-v3

Nothing is downloaded: the directory must exist, and onnx-asr resolves files offline when it
does. These models take at most 20-30 s per input, so regions are packed into groups of at
most `MAX_GROUP_S` and long regions are cut.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.ml.stt.base import Regions, SttError, SttResult, mono_float32, no_speech
from app.ml.stt.regions import PackedGroup, pack_regions, sorted_words
from app.ml.types import Word

MAX_GROUP_S = 20.0


def onnx_model_type(directory: Path, declared: str | None) -> str:
    """The onnx-asr model type: declared in the route, else `config.json`'s `model_type`."""
    if declared:
        return declared
    config = directory / "config.json"
    model_type: object = None
    if config.is_file():
        try:
            model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
        except (ValueError, AttributeError) as exc:
            raise SttError(f"the ONNX model's {config} is not valid JSON: {exc}") from exc
    if not isinstance(model_type, str) or not model_type:
        raise SttError(
            f"the ONNX model at {directory} does not say its type (no model_type in "
            "config.json): name it in the route, e.g. ru=onnx[gigaam-v3-ctc]:/models/gigaam-v3"
        )
    return model_type


class OnnxAsrStt:
    """`SpeechToText` on an onnx-asr recogniser with token timestamps (loaded once)."""

    def __init__(self, recogniser: Any, *, name: str, frame_s: float) -> None:
        self._recogniser = recogniser
        self._name = name
        self._frame_s = frame_s

    @classmethod
    def load(
        cls,
        directory: Path,
        *,
        model_type: str | None = None,
        threads: int = 1,
        device: str = "cpu",
    ) -> OnnxAsrStt:
        import onnx_asr
        import onnxruntime

        directory = directory.expanduser()
        if not directory.is_dir():
            raise SttError(
                f"the ONNX speech model directory {directory} does not exist: fetch the model "
                "into it (docs/languages.md) or fix the path in STT_MODELS"
            )
        kind = onnx_model_type(directory, model_type)
        providers = ["CUDAExecutionProvider"] if device.startswith("cuda") else []
        providers.append("CPUExecutionProvider")
        # An explicit thread count: onnxruntime's default is every core, which oversubscribes
        # a worker that also runs torch and CTranslate2.
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            model = onnx_asr.load_model(
                kind,
                directory,
                sess_options=options,
                providers=providers,
                # One preprocessing thread: the worker's thread budget is the session's.
                preprocessor_config={"max_concurrent_workers": 1},
            )
        except Exception as exc:
            raise SttError(
                f"could not load the ONNX speech model {kind} from {directory}: {exc}. The "
                "directory must hold an onnx-asr export of that model (docs/languages.md)"
            ) from exc
        asr = model.asr
        # onnx-asr reports token times as encoder frames x this step; a word ends at most one
        # step after its last token.
        frame_s = float(getattr(asr, "window_step", 0.01)) * int(
            getattr(asr, "_subsampling_factor", 4)
        )
        return cls(model.with_timestamps(), name=f"{kind}:{directory}", frame_s=frame_s)

    # --- SpeechToText ------------------------------------------------------------------

    def detect_language(self, audio: np.ndarray, regions: Regions) -> tuple[str, float] | None:
        """These recognisers do not identify languages; the pipeline's identifier does."""
        return None

    def transcribe(self, audio: np.ndarray, *, regions: Regions, language: str | None) -> SttResult:
        audio = mono_float32(audio)
        groups = pack_regions(
            audio,
            regions,
            max_group_s=MAX_GROUP_S,
            split_long=True,
        )
        if not groups:
            return no_speech(language)
        results = self._recogniser.recognize([group.audio for group in groups], sample_rate=16_000)
        words: list[Word] = []
        for group, result in zip(groups, results, strict=True):
            words.extend(self._words(group, list(result.tokens or ()), result.timestamps or []))
        return SttResult(
            words=sorted_words(words),
            language=language,
            language_probability=1.0 if language else None,
        )

    def _words(self, group: PackedGroup, tokens: list[str], times: Sequence[float]) -> list[Word]:
        return [
            group.map_word(text, start, end, None)
            for text, start, end in tokens_to_words(
                tokens, times, frame_s=self._frame_s, duration_s=group.duration_s
            )
        ]


def tokens_to_words(
    tokens: Sequence[str], times: Sequence[float], *, frame_s: float, duration_s: float
) -> list[tuple[str, float, float]]:
    """Group subword/character tokens into words with (text, start_s, end_s).

    onnx-asr gives each token the time of the encoder frame that emitted it and writes the
    SentencePiece word marker as a leading space (a character vocabulary has a bare space
    token): a token starting with a space begins a new word. A word starts at its first
    token and ends one frame after its last, but never after the next word starts.
    """
    spans: list[tuple[str, float, float]] = []
    text = ""
    start = last = 0.0
    for token, time_s in zip(tokens, times, strict=True):
        if token[:1].isspace() and text:
            spans.append((text, start, last))
            text = ""
        piece = token.strip()
        if not piece:
            continue
        if not text:
            start = float(time_s)
        text += piece
        last = float(time_s)
    if text:
        spans.append((text, start, last))
    words: list[tuple[str, float, float]] = []
    for index, (word, begin, last_token) in enumerate(spans):
        limit = spans[index + 1][1] if index + 1 < len(spans) else duration_s
        end = min(last_token + frame_s, max(limit, begin))
        words.append((word, round(begin, 3), round(max(end, begin), 3)))
    return words
