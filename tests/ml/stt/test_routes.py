"""LANGUAGES and STT_MODELS: the syntax, the defaults, the single-model case, and every bad
value stopping the worker's settings with a message that says what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.ml.settings import PipelineSettings
from app.ml.stt.bundled import WHISPER_BASE
from app.ml.stt.languages import fold_relatives
from app.ml.stt.routes import ModelSpec, parse_stt_models, routes_from_settings


def settings(**values: object) -> PipelineSettings:
    return PipelineSettings(_env_file=None, **values)  # type: ignore[arg-type]


def test_default_routes_russian_to_base_english_to_tiny_en_and_uzbek_nowhere() -> None:
    routes = routes_from_settings(settings())
    assert routes.languages == ("uz", "ru", "en")
    assert routes.routes == {
        "ru": ModelSpec("faster-whisper", "bundled-base"),
        "en": ModelSpec("faster-whisper", "bundled-tiny.en"),
    }
    assert routes.unrouted() == ("uz",)
    base, tiny = routes.describe()
    assert (base.name, base.languages) == ("faster-whisper:bundled-base", ("ru",))
    assert base.expected_sha256 == WHISPER_BASE.model_sha256
    assert base.path is not None and base.path.name == "faster-whisper-base"
    assert (tiny.name, tiny.languages, tiny.path) == (
        "faster-whisper:bundled-tiny.en",
        ("en",),
        None,
    )


def test_stt_models_syntax() -> None:
    routes = parse_stt_models(
        "uz+ru = onnx:/models/gigaam-multilingual, en=faster-whisper:bundled-tiny.en,"
        "kk=onnx[gigaam-multilingual-ctc]:/m/g",
        ("uz", "ru", "en", "kk"),
    )
    multilingual = ModelSpec("onnx", "/models/gigaam-multilingual")
    assert routes == {
        "uz": multilingual,
        "ru": multilingual,
        "en": ModelSpec("faster-whisper", "bundled-tiny.en"),
        "kk": ModelSpec("onnx", "/m/g", "gigaam-multilingual-ctc"),
    }
    assert routes["kk"].name == "onnx[gigaam-multilingual-ctc]:/m/g"
    assert routes["uz"].path == Path("/models/gigaam-multilingual")
    described = routes_from_settings(
        settings(languages="uz,ru,en", stt_models="uz+ru=onnx:/m/x,en=aisha")
    ).describe()
    assert [(d.name, d.languages, d.path) for d in described] == [
        ("onnx:/m/x", ("uz", "ru"), Path("/m/x")),
        ("aisha", ("en",), None),
    ]


def test_hosted_backends_stay_available_as_routes() -> None:
    routes = parse_stt_models("uz=aisha,ru=openai:gpt-4o-transcribe", ("uz", "ru"))
    assert routes["uz"] == ModelSpec("aisha")
    assert routes["ru"] == ModelSpec("openai", "gpt-4o-transcribe")


def test_stt_backend_and_model_are_the_single_model_case() -> None:
    routes = routes_from_settings(settings(stt_model="/models/large-v3"))
    assert set(routes.routes) == {"uz", "ru", "en"}
    assert set(routes.routes.values()) == {ModelSpec("faster-whisper", "/models/large-v3")}
    hosted = routes_from_settings(settings(stt_backend="aisha", languages="uz"))
    assert hosted.routes == {"uz": ModelSpec("aisha")}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"languages": "uz,xx"}, "unknown language code 'xx'"),
        ({"languages": " , "}, "no language given"),
        ({"stt_models": "qq=faster-whisper"}, "unknown language code 'qq'"),
        ({"stt_models": "kk=faster-whisper"}, "add kk to LANGUAGES"),
        ({"stt_models": "uz=whisper.cpp:/m"}, "unknown backend"),
        ({"stt_models": "uz=onnx"}, "onnx needs a model directory"),
        ({"stt_models": "uz"}, "is not LANGUAGE=BACKEND[:MODEL]"),
        ({"stt_models": "uz=aisha,uz=openai"}, "routes 'uz' twice"),
        ({"stt_models": "uz=aisha[x]"}, "only for onnx"),
        ({"stt_language": "de"}, "STT_LANGUAGE=de is not one of LANGUAGES"),
    ],
)
def test_bad_language_settings_are_refused_naming_the_fix(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("(", r"\(")):
        settings(**values)


def test_close_relatives_fold_onto_the_configured_language() -> None:
    # Whisper base on a USC Uzbek clip: mostly Azerbaijani and Turkish, some Russian.
    heard = {"az": 0.6, "tr": 0.2, "ru": 0.05, "en": 0.05, "lv": 0.1}
    folded = fold_relatives(heard, ("uz", "ru", "en"))
    assert max(folded, key=lambda code: folded[code]) == "uz"
    assert folded["uz"] == pytest.approx(0.9)
    assert sum(folded.values()) == pytest.approx(1.0)
    # Ukrainian counts for Russian; without Uzbek configured, nothing takes the residue.
    slavic = fold_relatives({"uk": 0.5, "ru": 0.2, "en": 0.1, "lv": 0.2}, ("ru", "en"))
    assert slavic == pytest.approx({"ru": 0.875, "en": 0.125})
    # A relative that is configured itself keeps its own probability.
    kazakh = fold_relatives({"kk": 0.7, "az": 0.3}, ("uz", "kk"))
    assert kazakh == pytest.approx({"uz": 0.3, "kk": 0.7})
