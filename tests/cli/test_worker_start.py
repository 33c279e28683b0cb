"""`ovozly worker` refuses to start on a bad language configuration, before it connects to
anything, with a message that says what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli.main import main


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"LANGUAGES": "uz,ru,xx"}, "LANGUAGES: unknown language code 'xx'"),
        ({"STT_MODELS": "uz=onnx:/models/gigaam"}, None),
        ({"STT_MODELS": "tg=aisha"}, "add tg to LANGUAGES"),
    ],
)
def test_worker_refuses_bad_language_settings(
    environment: dict[str, str],
    expected: str | None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value.replace("/models", str(tmp_path / "missing")))
    assert main(["worker", "--burst"]) == 2
    # (Model loading may print progress bars before the verdict.)
    error = capsys.readouterr().err.rsplit("\n", 2)[-2]
    assert error.startswith("ovozly worker: refusing to start: "), error
    if expected is None:
        assert "onnx:" in error and "missing/gigaam" in error and "does not exist" in error
    else:
        assert expected in error
