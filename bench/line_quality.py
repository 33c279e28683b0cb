"""A ladder of bad telephone lines, built from clean 16 kHz speech (by the tests and the
language benchmark): each rung is one way a contact centre's recording goes wrong, returned at
16 kHz so every model sees the same input a decoded upload gives it.

Rungs, mildest first: the telephone band alone; a G.711 µ-law round trip; GSM 6.10 (full-rate,
through libsndfile's encoder); a companding curve left unexpanded after an unfiltered 8 kHz
decimation (aliasing), as some recorders store it; hard clipping; line noise at 20, 10 and 5 dB
SNR on a G.711 line; packet loss with the lost 20 ms packets concealed by an attenuated repeat.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import soundfile

FloatArray = npt.NDArray[np.float32]

NARROW_RATE = 8000
WIDE_RATE = 16000
PACKET_S = 0.02
MU = 255.0


def _band(narrow: FloatArray) -> FloatArray:
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, [300, 3400], btype="bandpass", fs=NARROW_RATE, output="sos")
    filtered: FloatArray = sosfiltfilt(sos, narrow).astype(np.float32)
    return filtered


def _narrow(signal: FloatArray) -> FloatArray:
    from scipy.signal import resample_poly

    narrow: FloatArray = resample_poly(signal, 1, 2).astype(np.float32)
    return narrow


def _wide(narrow: FloatArray) -> FloatArray:
    from scipy.signal import resample_poly

    wide: FloatArray = resample_poly(narrow, 2, 1).astype(np.float32)
    return wide


def _round_trip(narrow: FloatArray, subtype: str) -> FloatArray:
    """Through a WAV codec of libsndfile and back, at 8 kHz."""
    buffer = io.BytesIO()
    soundfile.write(
        buffer, np.clip(narrow, -0.99, 0.99), NARROW_RATE, format="WAV", subtype=subtype
    )
    buffer.seek(0)
    decoded, _ = soundfile.read(buffer, dtype="float32")
    result: FloatArray = np.asarray(decoded, dtype=np.float32)
    return result


def _normalised(signal: FloatArray, peak: float = 0.5) -> FloatArray:
    scaled: FloatArray = (signal / max(float(np.abs(signal).max()), 1e-6) * peak).astype(np.float32)
    return scaled


def _with_noise(narrow: FloatArray, snr_db: float, seed: int) -> FloatArray:
    rng = np.random.default_rng(seed)
    power = float(np.mean(narrow**2)) or 1e-8
    noise = rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), len(narrow))
    noisy: FloatArray = (narrow + noise).astype(np.float32)
    return noisy


def telephone_band(signal: FloatArray, seed: int = 0) -> FloatArray:
    return _wide(_band(_narrow(_normalised(signal))))


def g711(signal: FloatArray, seed: int = 0) -> FloatArray:
    return _wide(_round_trip(_band(_narrow(_normalised(signal))), "ULAW"))


def gsm(signal: FloatArray, seed: int = 0) -> FloatArray:
    return _wide(_round_trip(_band(_narrow(_normalised(signal))), "GSM610"))


def unexpanded_companding(signal: FloatArray, seed: int = 0) -> FloatArray:
    """Decimated to 8 kHz with no anti-alias filter, µ-law compressed and never expanded:
    quiet sounds come out loud and the spectrum folds above 4 kHz."""
    narrow = _normalised(signal, 0.9)[::2]
    compressed = np.sign(narrow) * np.log1p(MU * np.abs(narrow)) / np.log1p(MU)
    return _wide(_normalised(compressed.astype(np.float32), 0.9))


def clipping(signal: FloatArray, seed: int = 0) -> FloatArray:
    """Gain far too high at the recorder: everything above a fifth of the peak is cut flat."""
    loud = _normalised(signal, 1.0)
    clipped = np.clip(loud, -0.2, 0.2) / 0.2 * 0.9
    return g711(clipped.astype(np.float32))


def noise(snr_db: float) -> Callable[[FloatArray, int], FloatArray]:
    def rung(signal: FloatArray, seed: int = 0) -> FloatArray:
        narrow = _with_noise(_band(_narrow(_normalised(signal))), snr_db, seed)
        return _wide(_round_trip(narrow, "ULAW"))

    return rung


def packet_loss(
    signal: FloatArray, seed: int = 0, *, loss: float = 0.1, burst: int = 2
) -> FloatArray:
    """A G.711 line losing `loss` of its 20 ms packets, in bursts of up to `burst`; each lost
    packet is concealed with the last good one at half its level (the commonest concealment),
    and a second lost packet in a row with silence (the concealment gives up)."""
    narrow = _round_trip(_band(_narrow(_normalised(signal))), "ULAW")
    size = round(PACKET_S * NARROW_RATE)
    rng = np.random.default_rng(seed)
    packets = [narrow[start : start + size].copy() for start in range(0, len(narrow), size)]
    lost = np.zeros(len(packets), dtype=bool)
    index = 0
    while index < len(packets):
        if rng.random() < loss / ((1 + burst) / 2):
            run = int(rng.integers(1, burst + 1))
            lost[index : index + run] = True
            index += run
        index += 1
    last_good = np.zeros(size, dtype=np.float32)
    for position, packet in enumerate(packets):
        if not lost[position]:
            last_good = packet
            continue
        repeated = position > 0 and lost[position - 1]
        packets[position] = (
            np.zeros_like(packet) if repeated else (last_good[: len(packet)] * 0.5)
        ).astype(np.float32)
    return _wide(np.concatenate(packets).astype(np.float32))


Rung = Callable[[FloatArray, int], FloatArray]

LADDER: dict[str, Rung | None] = {
    "clean": None,
    "telephone-band": telephone_band,
    "g711": g711,
    "gsm-6.10": gsm,
    "unexpanded-companding": unexpanded_companding,
    "clipping": clipping,
    "noise-20db": noise(20.0),
    "noise-10db": noise(10.0),
    "noise-5db": noise(5.0),
    "packet-loss-10pct": packet_loss,
}
"""Rung name -> how to make it from clean 16 kHz speech (None: the clean speech itself)."""


def degrade(signal: FloatArray, rung: str, seed: int = 0) -> FloatArray:
    """`signal` (16 kHz mono) as it comes through rung `rung` of the ladder, at 16 kHz."""
    make = LADDER[rung]
    if make is None:
        return signal
    degraded = make(signal, seed)
    return np.ascontiguousarray(degraded[: len(signal)], dtype=np.float32)
