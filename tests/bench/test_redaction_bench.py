"""The redaction benchmark's call is what it claims: every keyed digit in it is found, the
said card numbers too, and the copy is written."""

from __future__ import annotations

from pathlib import Path

from bench.redaction import measure


def test_the_bench_call_is_redacted_in_full(test_audio_dir: Path) -> None:
    row = measure(40.0)
    assert row["keys"] > 0 and row["keys_found"] == row["keys"]
    assert row["spoken_spans"] == 1
    assert 0 < row["copy_mb"] <= row["original_mb"]
