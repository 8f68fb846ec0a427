from __future__ import annotations

import base64

from pydantic import SecretStr

from ftel.settings import InfluxSettings
from ftel.storage.http import auth_headers


def test_a_token_wins_over_user_and_password() -> None:
    settings = InfluxSettings(token=SecretStr("t0k"), username="u", password=SecretStr("p"))
    assert auth_headers(settings) == {"Authorization": "Token t0k"}


def test_user_and_password_become_basic_auth() -> None:
    header = auth_headers(InfluxSettings(username="plant", password=SecretStr("s3cret")))["Authorization"]
    assert base64.b64decode(header.removeprefix("Basic ")) == b"plant:s3cret"


def test_no_credentials_send_no_header() -> None:
    assert auth_headers(InfluxSettings()) == {}
