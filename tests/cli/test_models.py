"""`ovozly models list | fetch | verify` as an operator runs them: the real CLI in a
subprocess, Hub models fetched from a real loopback server (`HF_ENDPOINT`), no internet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.ml.models.catalog import MANIFEST_NAME
from app.ml.stt.faster_whisper_backend import bundled_model_dir
from tests.cli.hub_server import FakeHub
from tests.conftest import REPO_ROOT

REPO_ID = "test-org/whisper-tiny-ct2"
MODEL_SETTINGS = (
    "STT_BACKEND",
    "STT_MODEL",
    "MODELS_DIR",
    "DIARIZATION_BACKEND",
    "DIARIZATION_MODEL",
    "ANALYSIS_BACKEND",
    "INTENT_EMBEDDINGS",
    "PERSON_NAMES",
    "DEVICE",
    "HF_TOKEN",
    "HF_ENDPOINT",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
)


def ovozly(
    *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    base = {key: value for key, value in os.environ.items() if key not in MODEL_SETTINGS}
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args],
        cwd=REPO_ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    server = FakeHub()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def whisper_repo(hub: FakeHub, tmp_path: Path) -> dict[str, Path]:
    """The bundled tiny.en CTranslate2 files published as a Hub repo, plus a file that
    faster-whisper does not read (it must not be fetched)."""
    source = bundled_model_dir()
    files = {
        name: source / name
        for name in ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
    }
    readme = tmp_path / "README.md"
    readme.write_text("# not needed by the worker\n")
    hub.add_repo(REPO_ID, {**files, "README.md": readme})
    return files


def test_list_on_the_default_configuration_shows_bundled_models_present_and_intact() -> None:
    result = ovozly("models", "list", "--json", env={})
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert [model["role"] for model in listing["models"]] == [
        "vad",
        "speaker-embeddings",
        "speech-to-text",
        "speech-to-text",
        "language-id",
        "sentence-embeddings",
        "names-ru",
    ]
    for model in listing["models"]:
        assert model["source"] == "package"
        assert model["present"] and model["hash"] == "ok" and model["problems"] == [], model
        assert model["sizeBytes"] > 0
        assert Path(model["location"]).is_dir()
    stt_names = [m["name"] for m in listing["models"] if m["role"] == "speech-to-text"]
    assert stt_names[0].startswith("Whisper base") and stt_names[1].startswith("Whisper tiny.en")

    table = ovozly("models", "list", "--no-hash", env={})
    assert "All present." in table.stdout and "speech-to-text" in table.stdout


def test_fetch_downloads_only_what_is_needed_resumes_verifies_and_repairs(
    hub: FakeHub, whisper_repo: dict[str, Path], tmp_path: Path
) -> None:
    models_dir = tmp_path / "models"
    env = {"STT_MODEL": REPO_ID, "MODELS_DIR": str(models_dir), "HF_ENDPOINT": hub.url}
    target = models_dir / REPO_ID

    listed = json.loads(ovozly("models", "list", "--json", env=env).stdout)
    stt = next(model for model in listed["models"] if model["role"] == "speech-to-text")
    assert stt["source"] == "huggingface" and not stt["present"]
    assert stt["location"] == str(target)
    assert hub.requests == [], "listing must not touch the network"
    failed_verify = ovozly("models", "verify", env=env)
    assert failed_verify.returncode == 1 and "ovozly models fetch" in failed_verify.stdout

    # A previous run was interrupted half-way through tokenizer.json, and this run's first
    # download of model.bin is cut off after 10 MB.
    tokenizer = whisper_repo["tokenizer.json"].read_bytes()
    target.mkdir(parents=True)
    (target / "tokenizer.json.part").write_bytes(tokenizer[: len(tokenizer) // 2])
    hub.cut_after["model.bin"] = 10_000_000

    fetched = ovozly("models", "fetch", "--json", env=env)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    summary = json.loads(fetched.stdout)
    stt_summary = next(m for m in summary["models"] if m["role"] == "speech-to-text")
    assert stt_summary["ok"] and stt_summary["commit"] == hub.repos[REPO_ID].commit

    for name, source in whisper_repo.items():
        assert (target / name).read_bytes() == source.read_bytes(), name
        assert not (target / f"{name}.part").exists()
    assert not (target / "README.md").exists() and hub.downloads_of("README.md") == []
    assert [r.range for r in hub.downloads_of("tokenizer.json")] == [
        f"bytes={len(tokenizer) // 2}-"
    ]
    model_gets = hub.downloads_of("model.bin")
    assert len(model_gets) == 2 and model_gets[0].range is None
    assert model_gets[1].range is not None
    resumed_at = int(model_gets[1].range.removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 10_000_000
    manifest = json.loads((target / MANIFEST_NAME).read_text())
    assert manifest["commit"] == hub.repos[REPO_ID].commit
    assert {f["path"]: f["algorithm"] for f in manifest["files"]} == {
        "config.json": "git-sha1",
        "model.bin": "sha256",
        "tokenizer.json": "sha256",
        "vocabulary.txt": "git-sha1",
    }

    verified = ovozly("models", "verify", "--json", env=env)
    assert verified.returncode == 0, verified.stdout
    assert all(m["hash"] == "ok" for m in json.loads(verified.stdout)["models"])

    # A flipped byte (same size) is caught by the hash, and the next fetch replaces only
    # that file.
    weights = bytearray((target / "model.bin").read_bytes())
    weights[len(weights) // 2] ^= 0xFF
    (target / "model.bin").write_bytes(bytes(weights))
    corrupt = ovozly("models", "verify", env=env)
    assert corrupt.returncode == 1
    assert "model.bin does not match its published sha256" in corrupt.stdout
    before = len(hub.requests)
    repaired = ovozly("models", "fetch", env=env)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    downloads = [r.path.rsplit("/", 1)[-1] for r in hub.requests[before:] if "/resolve/" in r.path]
    assert downloads == ["model.bin"]
    assert ovozly("models", "verify", env=env).returncode == 0


def test_fetch_explains_offline_gated_and_unknown_models(
    hub: FakeHub, whisper_repo: dict[str, Path], tmp_path: Path
) -> None:
    env = {"STT_MODEL": REPO_ID, "MODELS_DIR": str(tmp_path / "models")}

    unreachable = ovozly("models", "fetch", env={**env, "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert unreachable.returncode == 1
    assert "cannot reach http://127.0.0.1:9" in unreachable.stdout
    assert "needs network access" in unreachable.stdout
    assert "Traceback" not in unreachable.stdout + unreachable.stderr

    offline = ovozly("models", "fetch", env={**env, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 1 and "HF_HUB_OFFLINE=1 forbids downloads" in offline.stdout
    assert hub.requests == []

    unknown = ovozly(
        "models", "fetch", env={**env, "STT_MODEL": "test-org/nope", "HF_ENDPOINT": hub.url}
    )
    assert unknown.returncode == 1 and "test-org/nope was not found" in unknown.stdout

    hub.add_repo("test-org/gated", dict(whisper_repo), gated_token="hf_secret_token")
    gated_env = {**env, "STT_MODEL": "test-org/gated", "HF_ENDPOINT": hub.url}
    refused = ovozly("models", "fetch", env=gated_env)
    assert refused.returncode == 1 and "is gated" in refused.stdout and "HF_TOKEN" in refused.stdout
    allowed = ovozly("models", "fetch", env={**gated_env, "HF_TOKEN": "hf_secret_token"})
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


@pytest.mark.slow
def test_worker_check_loads_and_runs_a_fetched_model(
    hub: FakeHub, whisper_repo: dict[str, Path], tmp_path: Path
) -> None:
    env = {"STT_MODEL": REPO_ID, "MODELS_DIR": str(tmp_path / "models"), "HF_ENDPOINT": hub.url}
    # The analysis models have nothing to do with this failure; leaving them out keeps it quick.
    lean = {"INTENT_EMBEDDINGS": "false", "PERSON_NAMES": "false", "HF_HUB_OFFLINE": "1"}
    missing = ovozly("worker", "--check", "--json", env={**env, **lean})
    assert missing.returncode == 1
    report = json.loads(missing.stdout)
    stt = next(check for check in report["models"] if check["role"] == "speech-to-text")
    assert not stt["ok"] and "ovozly models fetch" in stt["error"]
    assert hub.requests == [], "the worker must never download"

    assert ovozly("models", "fetch", env=env).returncode == 0
    requests_after_fetch = len(hub.requests)
    checked = ovozly("worker", "--check", env={**env, "HF_HUB_OFFLINE": "1"})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert REPO_ID in checked.stdout and "OK: " in checked.stdout
    assert len(hub.requests) == requests_after_fetch


def test_an_onnx_route_under_models_dir_is_fetched_from_its_hub_repo(
    hub: FakeHub, tmp_path: Path
) -> None:
    sources = tmp_path / "export"
    sources.mkdir()
    (sources / "model.onnx").write_bytes(bytes(range(256)) * 8_000)
    (sources / "vocab.txt").write_text("▁ 0\nа 1\n<blk> 2\n")
    (sources / "config.json").write_text('{"model_type": "gigaam-v3-ctc"}')
    (sources / "README.md").write_text("not needed\n")
    hub.add_repo("istupakov/tiny-onnx", {p.name: p for p in sources.iterdir()})
    models_dir = tmp_path / "models"
    env = {
        "MODELS_DIR": str(models_dir),
        "LANGUAGES": "ru",
        "STT_MODELS": f"ru=onnx:{models_dir}/istupakov/tiny-onnx",
        "HF_ENDPOINT": hub.url,
    }
    listed = json.loads(ovozly("models", "list", "--json", env=env).stdout)
    (stt,) = [model for model in listed["models"] if model["role"] == "speech-to-text"]
    assert stt["source"] == "huggingface" and stt["repoId"] == "istupakov/tiny-onnx"
    assert not stt["present"]

    fetched = ovozly("models", "fetch", env=env)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    target = models_dir / "istupakov" / "tiny-onnx"
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith(".")) == [
        "config.json",
        "model.onnx",
        "vocab.txt",
    ]
    assert ovozly("models", "verify", env=env).returncode == 0
