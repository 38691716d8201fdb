"""HTTP Basic auth from settings (ADRPO_AUTH_USER / ADRPO_AUTH_PASSWORD) for the REST API, its docs and the
studio. Either both are set (auth on) or neither (auth off): Settings refuses half a configuration."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from worker.settings import Settings

_basic = HTTPBasic(auto_error=False)


def credentials_match(settings: Settings, user: str, password: str) -> bool:
    """Both compared in constant time, and both always compared (no short-circuit on a wrong user)."""
    expected_user, expected_password = settings.auth_user, settings.auth_password
    if expected_user is None or expected_password is None:
        return False  # auth is off: there is nothing to match (callers do not ask then)
    user_ok = secrets.compare_digest(user.encode("utf-8", "surrogatepass"), expected_user.encode())
    password_ok = secrets.compare_digest(password.encode("utf-8", "surrogatepass"), expected_password.encode())
    return user_ok & password_ok


def basic_auth(settings: Settings) -> Callable[..., None]:
    """A dependency that lets everyone through when auth is off, else demands the configured user."""

    def check(credentials: HTTPBasicCredentials | None = Depends(_basic)) -> None:
        if not settings.auth_enabled:
            return
        if credentials is None or not credentials_match(settings, credentials.username, credentials.password):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "credentials: wrong or missing user/password",
                headers={"WWW-Authenticate": "Basic"},
            )

    return check


def gradio_auth(settings: Settings) -> Callable[[str, str], bool] | None:
    """The same credentials (and the same comparison) for the studio's login page."""
    if not settings.auth_enabled:
        return None
    return lambda user, password: credentials_match(settings, user, password)
