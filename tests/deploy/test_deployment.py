"""Deployment files stay in step with the code: compose services, the image's environment,
documented settings.

Nothing here can start a container (no daemon on the project's machines), so the files are
read the way compose and the image would apply them: the Dockerfile's ENV under each
service's `environment`, `${VAR:-default}` interpolated with its default.
"""

from __future__ import annotations

import argparse
import re
import secrets
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli.main import build_parser
from app.core.config import Settings
from app.ml.analysis.settings import AnalysisSettings
from app.ml.models.catalog import ModelSource, required_models
from app.ml.settings import PipelineSettings
from tests.conftest import REPO_ROOT

OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
DOWNLOAD_SETTINGS = ("STT_ALLOW_DOWNLOAD",)
"""Settings that ask for a run-time download (retired; must never meet an offline switch)."""
REQUIRED_VARIABLES = {"JWT_KEY": secrets.token_urlsafe(48)}
"""Values an operator must supply (`${VAR:?...}`), as a real deployment would."""


@dataclass
class Service:
    name: str
    command: list[str]
    environment: dict[str, str]
    """The Dockerfile's ENV overlaid with the service's own, interpolated."""
    definition: dict[str, Any]


def dockerfile_env(text: str) -> dict[str, str]:
    """`ENV KEY=VALUE ...` instructions, line continuations joined."""
    joined = re.sub(r"\\\n", " ", text)
    env: dict[str, str] = {}
    for line in joined.splitlines():
        line = line.strip()
        if not line.upper().startswith("ENV "):
            continue
        for pair in shlex.split(line[4:]):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def interpolate(value: object) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` with nothing exported
    but the variables an operator must set."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2) or "", match.group(3) or ""
        if name in REQUIRED_VARIABLES:
            return REQUIRED_VARIABLES[name]
        if operator == ":?":
            raise AssertionError(f"${{{name}}} is required but has no test value")
        return argument if operator == ":-" else ""

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}", substitute, str(value))


def deployment(compose_text: str, dockerfile_text: str) -> list[Service]:
    """The services running our image, as compose would start them."""
    compose = yaml.safe_load(compose_text)
    image_env = dockerfile_env(dockerfile_text)
    services = []
    for name, definition in compose["services"].items():
        if "build" not in definition:
            continue
        own = {
            key: interpolate(value) for key, value in (definition.get("environment") or {}).items()
        }
        services.append(
            Service(name, list(definition["command"]), {**image_env, **own}, definition)
        )
    return services


def current_deployment() -> list[Service]:
    return deployment(
        (REPO_ROOT / "docker-compose.yml").read_text(), (REPO_ROOT / "Dockerfile").read_text()
    )


@contextmanager
def only_environment(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Iterator[None]:
    """Settings read from exactly `env` (no test-run variables, no .env file)."""
    with monkeypatch.context() as patch:
        for key in list(__import__("os").environ):
            patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        yield


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _subcommands() -> set[str]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("ovozly has no subcommands")


def check_deployment(services: list[Service], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every inconsistency between the compose file, the image and the code."""
    problems: list[str] = []
    subcommands = _subcommands()
    for service in services:
        commands = [service.command]
        test = (service.definition.get("healthcheck") or {}).get("test") or []
        if test[:1] == ["CMD"] and test[1:2] == ["ovozly"]:
            commands.append(test[1:])
        for command in commands:
            if command[:1] != ["ovozly"] or command[1:2] == [] or command[1] not in subcommands:
                problems.append(f"{service.name}: {command} is not an ovozly subcommand")
                continue
            try:
                build_parser().parse_args(command[1:])
            except SystemExit:
                problems.append(f"{service.name}: `{' '.join(command)}` does not parse")
        env = service.environment
        with only_environment(monkeypatch, env):
            for settings_class in (Settings, PipelineSettings, AnalysisSettings):
                try:
                    settings_class(_env_file=None)
                except ValueError as exc:
                    problems.append(f"{service.name}: {settings_class.__name__} invalid: {exc}")
        offline = [name for name in OFFLINE_SWITCHES if _truthy(env.get(name))]
        downloads = [name for name in DOWNLOAD_SETTINGS if _truthy(env.get(name))]
        if service.command[1:3] == ["models", "fetch"]:
            downloads.append("`ovozly models fetch`")
        if offline and downloads:
            problems.append(
                f"{service.name}: {', '.join(offline)} on contradicts {', '.join(downloads)}"
            )
    return problems


def test_todays_deployment_files_were_inconsistent(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check catches what earlier deployment files got wrong (kept as a fixture)."""
    fixtures = Path(__file__).parent / "fixtures"
    services = deployment(
        (fixtures / "docker-compose.outdated.yml").read_text(),
        (fixtures / "Dockerfile.outdated").read_text(),
    )
    problems = check_deployment(services, monkeypatch)
    assert any("HF_HUB_OFFLINE on contradicts STT_ALLOW_DOWNLOAD" in p for p in problems), problems


def test_every_service_runs_a_real_subcommand_with_valid_consistent_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = current_deployment()
    assert {"api", "worker", "migrate", "models"} <= {service.name for service in services}
    assert check_deployment(services, monkeypatch) == []


def test_the_models_service_fetches_what_the_worker_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = {service.name: service for service in current_deployment()}
    worker, models = services["worker"], services["models"]
    assert _truthy(worker.environment.get("HF_HUB_OFFLINE")), "workers must never download"

    def fetched(env: dict[str, str]) -> list[tuple[str, str]]:
        with only_environment(monkeypatch, env):
            specs = required_models(
                PipelineSettings(_env_file=None),
                AnalysisSettings(_env_file=None),
            )
        return [
            (spec.role, str(spec.location))
            for spec in specs
            if spec.source is ModelSource.HUGGING_FACE
        ]

    worker_models = fetched(worker.environment)
    assert worker_models, "the default compose worker loads a Hub model (large-v3)"
    assert fetched(models.environment) == worker_models
    models_dir = worker.environment["MODELS_DIR"]
    assert models.environment["MODELS_DIR"] == models_dir
    worker_mounts = worker.definition["volumes"]
    assert f"models:{models_dir}:ro" in worker_mounts, "workers read the models read-only"
    assert f"models:{models_dir}" in models.definition["volumes"]
    assert models.definition["restart"] == "no"
    assert worker.definition["depends_on"]["models"] == {
        "condition": "service_completed_successfully"
    }


def test_healthchecks_gpu_and_pinned_images() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("api", "worker", "postgres", "redis"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    # The API's healthcheck is its liveness (/healthz, from the event loop), and something
    # acts on it: Docker's restart policy alone restarts only containers that exit.
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["api"]["labels"]["autoheal"] == "true"
    assert services["api"]["restart"] == "unless-stopped"
    autoheal = services["autoheal"]
    assert autoheal["environment"]["AUTOHEAL_CONTAINER_LABEL"] == "autoheal"
    assert "/var/run/docker.sock:/var/run/docker.sock" in autoheal["volumes"]
    assert services["worker"]["healthcheck"]["test"][1:] == ["ovozly", "worker", "--healthcheck"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
    pinned = re.compile(r"(@sha256:[0-9a-f]{64}$)|(:\d+\.\d+(\.\d+)?[-\w.]*$)")
    images = [interpolate(service["image"]) for service in services.values()]
    images += re.findall(r"^FROM\s+(\S+)", (REPO_ROOT / "Dockerfile").read_text(), re.MULTILINE)
    for image in images:
        assert pinned.search(image), f"{image} is not pinned to a version or digest"


def test_env_example_documents_every_setting() -> None:
    documented = set(
        re.findall(
            r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO_ROOT / ".env.example").read_text(), re.MULTILINE
        )
    )
    for settings_class in (Settings, PipelineSettings, AnalysisSettings):
        for name, field in settings_class.model_fields.items():
            env_name = (field.alias or name).upper()
            assert env_name in documented, f"{env_name} is missing from .env.example"
