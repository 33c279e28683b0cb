"""API fixtures: users with tokens, and where generated recordings go."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.db.engine import SessionFactory
from app.db.models import Role
from tests.api.helpers import GraphQLClient
from tests.factories import make_user

# The real GCS emulator, for the audio route over the GCS backend.
from tests.storage.conftest import gcs_client, gcs_emulator_host, gcs_storage  # noqa: F401


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the calls tests write the small recordings they generate."""
    return tmp_path_factory.mktemp("api-audio")


@pytest.fixture
async def admin_token(gql: GraphQLClient, sessions: SessionFactory) -> str:
    await make_user(sessions, "admin", Role.ADMIN)
    return await gql.login("admin")


@pytest.fixture
async def agent_token(gql: GraphQLClient, sessions: SessionFactory) -> str:
    await make_user(sessions, "agent1")
    return await gql.login("agent1")
