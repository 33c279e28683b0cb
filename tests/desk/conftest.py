"""Desk fixtures: the app's own session factory and storage, users with tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from fastapi import FastAPI

from app.api.resources import Resources
from app.db.models import Role
from tests.api.helpers import GraphQLClient
from tests.factories import make_user

# The real GCS emulator, for the audio route over the GCS backend.
from tests.storage.conftest import gcs_client, gcs_emulator_host, gcs_storage  # noqa: F401


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    token: str


@pytest.fixture
def resources(app: FastAPI) -> Resources:
    resources: Resources = app.state.resources
    return resources


async def person(gql: GraphQLClient, resources: Resources, name: str, role: Role) -> Person:
    user = await make_user(resources.sessions, name, role)
    return Person(user.id, await gql.login(name))


@pytest.fixture
async def admin(gql: GraphQLClient, resources: Resources) -> Person:
    return await person(gql, resources, "admin", Role.ADMIN)


@pytest.fixture
async def dilnoza(gql: GraphQLClient, resources: Resources) -> Person:
    return await person(gql, resources, "dilnoza", Role.AGENT)


@pytest.fixture
async def aziz(gql: GraphQLClient, resources: Resources) -> Person:
    return await person(gql, resources, "aziz", Role.AGENT)
