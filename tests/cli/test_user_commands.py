"""`ovozly create-user` and `ovozly set-password` against the test database."""

from __future__ import annotations

import pytest

from app.cli.main import main


def test_create_user_and_set_password(
    database_url: str,
    redis_url: str,
    clean_database: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ARGON2_TIME_COST", "1")
    monkeypatch.setenv("ARGON2_MEMORY_KIB", "8192")
    monkeypatch.setenv("ARGON2_PARALLELISM", "1")

    assert main(["create-user", "Dilnoza", "--password", "a-long-password"]) == 0
    assert "created agent 'dilnoza'" in capsys.readouterr().out
    assert main(["create-user", "dilnoza", "--password", "a-long-password"]) == 2
    assert "already taken" in capsys.readouterr().err
    assert main(["create-user", "admin2", "--role", "ADMIN", "--password", "short"]) == 2
    assert "at least" in capsys.readouterr().err

    assert main(["set-password", "dilnoza", "--password", "another-long-pw"]) == 0
    assert main(["set-password", "nobody", "--password", "another-long-pw"]) == 2
    assert "no user 'nobody'" in capsys.readouterr().err
