"""The intent catalogue: intents with multilingual phrases and examples, and the action rules.

The bundled `data/catalog.yaml` is always loaded; an operator file (INTENT_CATALOG) is merged
over it so a deployment can add or replace intents without forking the package.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.core.enums import Sentiment
from app.ml.analysis.errors import AnalysisError


class IntentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: dict[str, str] = Field(default_factory=dict)
    phrases: dict[str, list[str]] = Field(default_factory=dict)
    examples: list[str] = Field(default_factory=list)

    def title_in(self, language: str) -> str:
        return self.title.get(language) or self.title.get("en") or self.name.replace("_", " ")


class ActionCondition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    intent: str | None = None
    issue: bool | None = None
    sentiment: Sentiment | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> ActionCondition:
        if sum(v is not None for v in (self.intent, self.issue, self.sentiment)) != 1:
            raise ValueError("`when` takes exactly one of intent, issue, sentiment")
        return self


class ActionRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    when: ActionCondition
    text: dict[str, str]

    def text_in(self, language: str) -> str:
        return self.text.get(language) or self.text.get("en") or next(iter(self.text.values()))


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    intents: list[IntentSpec] = Field(default_factory=list)
    actions: list[ActionRule] = Field(default_factory=list)

    def intent(self, name: str) -> IntentSpec | None:
        return next((spec for spec in self.intents if spec.name == name), None)

    def merged_with(self, other: Catalog) -> Catalog:
        names = {spec.name for spec in other.intents}
        intents = [spec for spec in self.intents if spec.name not in names] + list(other.intents)
        return Catalog(intents=intents, actions=[*self.actions, *other.actions])


def _parse(raw: Any, source: str) -> Catalog:
    try:
        return Catalog.model_validate(raw if raw is not None else {})
    except ValidationError as error:
        raise AnalysisError(f"intent catalogue {source} is invalid: {error}") from error


@lru_cache(maxsize=8)
def load_catalog(extra: Path | None = None) -> Catalog:
    """The bundled catalogue, merged with the operator's file when one is configured."""
    bundled = resources.files("app.ml.analysis").joinpath("data/catalog.yaml").read_text("utf-8")
    catalog = _parse(yaml.safe_load(bundled), "bundled")
    if extra is None:
        return catalog
    try:
        raw = yaml.safe_load(extra.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise AnalysisError(f"cannot read intent catalogue {extra}: {error}") from error
    return catalog.merged_with(_parse(raw, str(extra)))
