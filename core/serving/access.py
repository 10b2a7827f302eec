"""Who may use the OpenAI-compatible server: an API key checked on every request, and the rule
that a server reachable from other machines must have one.

Why: without a key, anyone who can reach the port can make the model generate (and hold it); on
a shared machine that is every user, beyond loopback it is the network. The key is compared in
constant time; the request body is bounded before it is read, so an oversized body costs nothing.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import os
from collections.abc import Mapping
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.serving.schema import error_body

API_KEY_ENV = "MOTE_API_KEY"
LOOPBACK_NAMES = ("localhost",)


class ServeAccessError(ValueError):
    """The server cannot start with these access settings; the message says what to pass."""


def resolve_api_key(api_key: str | None = None, api_key_file: str | Path | None = None,
                    environ: Mapping[str, str] | None = None) -> str | None:
    """--api-key, else the first line of --api-key-file, else $MOTE_API_KEY; None when none is given."""
    if api_key is not None and api_key_file is not None:
        raise ServeAccessError("Give the API key once: --api-key or --api-key-file, not both.")
    if api_key_file is not None:
        path = Path(api_key_file).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ServeAccessError(f"--api-key-file {path}: cannot read it ({error.strerror}): give a readable file "
                                   "whose first line is the key.") from None
        api_key = lines[0].strip() if lines else ""
        if not api_key:
            raise ServeAccessError(f"--api-key-file {path}: the first line is empty: write the key on it.")
    if api_key is None:
        api_key = (os.environ if environ is None else environ).get(API_KEY_ENV) or None
    if api_key is not None and (len(api_key) < 8 or any(c.isspace() for c in api_key)):
        raise ServeAccessError("The API key is shorter than 8 characters or holds a space: use a long random key, "
                               "e.g. `python -c \"import secrets; print(secrets.token_urlsafe(32))\"`.")
    return api_key


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond loopback without a key."""
    if api_key is None and not is_loopback(host):
        raise ServeAccessError(
            f"--host {host} makes the server reachable from other machines, so it needs an API key: add "
            f"--api-key-file FILE (or --api-key KEY, or export {API_KEY_ENV}=KEY), and give clients the key."
        )


async def _send_error(send: Send, status: int, message: str, kind: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(error_body(message, kind=kind)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """ASGI middleware: 401 without the right `Authorization: Bearer KEY` (when a key is set), 413
    for a body over `max_body_bytes` (by Content-Length, and while a chunked body is read)."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body_bytes: int) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes
        self.expected = f"Bearer {api_key}".encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.expected is not None and not hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
            await _send_error(send, 401, "Missing or wrong API key: send the header 'Authorization: Bearer KEY' with the "
                              "key the server operator gave you.", "authentication_error", [(b"www-authenticate", b"Bearer")])
            return
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_body_bytes:
            await _send_error(send, 413, f"The request body is over this server's limit of {self.max_body_bytes} "
                              "bytes: send a shorter prompt.", "invalid_request_error")
            return
        await self.app(scope, self._bounded(receive, send), send)

    def _bounded(self, receive: Receive, send: Send) -> Receive:
        seen = 0

        async def bounded() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:  # a chunked body with no Content-Length
                    raise BodyTooLarge(self.max_body_bytes)
            return message
        return bounded


class BodyTooLarge(ValueError):
    """A chunked request body grew over the server's byte limit while it was read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is over this server's limit of {limit} bytes: send a shorter prompt.")
