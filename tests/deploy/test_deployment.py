"""Deployment files stay in step with the code: compose commands and documented settings."""

from __future__ import annotations

import argparse
import re

import yaml

from app.cli import build_parser
from app.config import Settings
from app.ml.analysis.settings import AnalysisSettings
from app.ml.settings import PipelineSettings
from tests.conftest import REPO_ROOT


def _subcommands() -> set[str]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("ovozly has no subcommands")


def test_every_compose_service_runs_a_real_ovozly_subcommand() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    subcommands = _subcommands()
    ours = {name: service for name, service in compose["services"].items() if "build" in service}
    assert {"api", "worker", "migrate"} <= set(ours)
    for name, service in ours.items():
        command = service["command"]
        assert command[0] == "ovozly", name
        assert command[1] in subcommands, (name, command)
        build_parser().parse_args(command[1:])
    worker_devices = compose["services"]["worker"]["deploy"]["resources"]["reservations"]
    assert worker_devices["devices"][0]["driver"] == "nvidia"


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
