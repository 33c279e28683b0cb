"""Install-time warm-up: pays one-off costs (numba JIT caches behind librosa/Resemblyzer)
at `make install` rather than inside the first job a worker runs."""

from __future__ import annotations

import numpy as np


def main() -> None:
    import librosa

    # Resemblyzer's preprocessing calls these; numba caches the compiled kernels on disk.
    signal = np.zeros(16_000, dtype=np.float32)
    librosa.feature.melspectrogram(y=signal, sr=16_000, n_fft=400, hop_length=160, n_mels=40)
    librosa.resample(signal, orig_sr=16_000, target_sr=8_000)


if __name__ == "__main__":
    main()
