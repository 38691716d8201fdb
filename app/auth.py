"""Optional HTTP Basic auth from settings (ADRPO_AUTH_USER / ADRPO_AUTH_PASSWORD) for the REST API."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from worker.settings import Settings

_basic = HTTPBasic(auto_error=False)


def basic_auth(settings: Settings) -> Callable[..., None]:
    """A dependency that lets everyone through when auth is off, else demands the configured user."""

    def check(credentials: HTTPBasicCredentials | None = Depends(_basic)) -> None:
        if not settings.auth_enabled:
            return
        if credentials is None or not (
            secrets.compare_digest(credentials.username.encode(), settings.auth_user.encode())
            and secrets.compare_digest(credentials.password.encode(), settings.auth_password.encode())
        ):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "credentials: wrong or missing user/password",
                                headers={"WWW-Authenticate": "Basic"})

    return check


def gradio_auth(settings: Settings) -> tuple[str, str] | None:
    """The same credentials for the studio's login page."""
    return (settings.auth_user, settings.auth_password) if settings.auth_enabled else None
