from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.cli.main import with_dev_secret
from app.core.config import Environment, Settings, persistent_jwt_key


@pytest.mark.parametrize("key", [None, "", "changeme", "secret", "short-but-random-x1"])
def test_outside_development_a_missing_or_placeholder_jwt_key_refuses_to_start(
    key: str | None,
) -> None:
    with pytest.raises(ValidationError, match="JWT_KEY"):
        Settings(environment=Environment.PRODUCTION, jwt_key=key)


def test_development_generates_one_key_and_keeps_it(tmp_path: Path) -> None:
    settings = Settings(environment=Environment.DEVELOPMENT, jwt_key=None, data_dir=tmp_path)
    first = with_dev_secret(settings).signing_key
    assert len(first) >= 32
    assert with_dev_secret(settings).signing_key == first
    assert persistent_jwt_key(tmp_path) == first
    assert (tmp_path / "jwt.key").stat().st_mode & 0o077 == 0


def test_cors_origins_parse_from_a_comma_separated_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings().cors_origins == ["https://a.example", "https://b.example"]


def test_webhooks_reach_private_addresses_outside_production_or_when_allowed() -> None:
    key = "k" * 48
    assert Settings(environment=Environment.TEST, jwt_key=key).webhooks_may_reach_private
    production = Settings(
        environment=Environment.PRODUCTION, jwt_key=key, public_base_url="https://o.example"
    )
    assert not production.webhooks_may_reach_private
    allowed = Settings(
        environment=Environment.PRODUCTION,
        jwt_key=key,
        public_base_url="https://o.example",
        webhook_allow_private=True,
    )
    assert allowed.webhooks_may_reach_private


def test_production_needs_a_public_base_url_or_allowed_hosts() -> None:
    key = "k" * 48
    with pytest.raises(ValidationError, match="PUBLIC_BASE_URL"):
        Settings(environment=Environment.PRODUCTION, jwt_key=key)
    with pytest.raises(ValidationError, match="http"):
        Settings(environment=Environment.PRODUCTION, jwt_key=key, public_base_url="ovozly")
    assert Settings(environment=Environment.PRODUCTION, jwt_key=key, allowed_hosts="a.example")
    assert Settings(environment=Environment.TEST, jwt_key=key).forwarded_allow_ips == []
