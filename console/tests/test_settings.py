"""Settings come from the environment, strictly; production values pass Django's deploy checks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from console.env import env_bool, env_int, env_list, env_str

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL"}}
    return subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("1", True), ("Off", False), ("no", False)])
def test_booleans_parse(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    monkeypatch.setenv("FLAG", raw)
    assert env_bool("FLAG", not expected) is expected


def test_a_boolean_that_is_neither_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBUG_X", "flase")
    with pytest.raises(ImproperlyConfigured, match="DEBUG_X='flase' is not a boolean"):
        env_bool("DEBUG_X", False)


def test_integers_and_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("N", "12")
    monkeypatch.setenv("HOSTS", " a.example , b.example,")
    assert env_int("N", 0) == 12
    assert env_list("HOSTS", []) == ["a.example", "b.example"]
    monkeypatch.setenv("N", "twelve")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("N", 0)


def test_secrets_can_come_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("SOME_SECRET_FILE", str(secret))
    assert env_str("SOME_SECRET") == "from-a-file"
    monkeypatch.setenv("SOME_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        env_str("SOME_SECRET")


def test_production_refuses_to_start_without_a_secret_key() -> None:
    result = run_manage("check")
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is false" in result.stderr


def test_a_negative_spend_window_stops_start_up() -> None:
    result = run_manage("check", DEBUG="true", ROUTING_SPEND_FRESH_SECONDS="-1")
    assert result.returncode != 0
    assert "ROUTING_SPEND_FRESH_SECONDS=-1.0 must be 0 or more." in result.stderr


def test_deploy_check_is_clean_with_production_values(tmp_path: Path) -> None:
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "DEBUG",
        DEBUG="false",
        SECRET_KEY="a-long-random-production-secret-key-0123456789-abcdefghijklmnopq",
        ALLOWED_HOSTS="switchboard.example.com",
        AUDIT_SIGNING_KEY="bm90LWEtcmVhbC1rZXktYnV0LTMyLWJ5dGVzLWxvbmc=",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
