"""The browser's access_token cookie, set by the server so that page scripts never see it.

A browser's EventSource cannot send an Authorization header, so the watch streams authenticate with
this cookie. Login and refresh answers set it (gRPC initial metadata `set-cookie`, which the gateway's
transcoder passes on as the HTTP header), logout clears it:

- HttpOnly: scripts (an XSS) cannot read it;
- SameSite=Strict: other sites' pages never send it;
- Secure when the client reached the gateway over TLS (`x-forwarded-proto: https`);
- Path=/api/: only API calls carry it; its lifetime is the access token's.

The cookie only ever authorises reading: the registry accepts it for reads alone
(server.COOKIE_METHOD_PREFIXES) and the gateway refuses a change that carries no Authorization header.
"""

from __future__ import annotations

ACCESS_COOKIE = "access_token"
COOKIE_PATH = "/api/"


def _attributes(metadata: dict[str, str]) -> str:
    secure = metadata.get("x-forwarded-proto", "").lower() == "https"
    return f"Path={COOKIE_PATH}; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")


def set_access_cookie(token: str, max_age: int, metadata: dict[str, str]) -> tuple[str, str]:
    """The `set-cookie` metadata pair that gives the browser `token` for `max_age` seconds."""
    return ("set-cookie", f"{ACCESS_COOKIE}={token}; Max-Age={max_age}; {_attributes(metadata)}")


def clear_access_cookie(metadata: dict[str, str]) -> tuple[str, str]:
    return ("set-cookie", f"{ACCESS_COOKIE}=; Max-Age=0; {_attributes(metadata)}")
