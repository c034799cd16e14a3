"""The CLI's calls to a running daemon's admin API (`omen replay`, `omen keys`): one JSON
request, and anything but a 2xx from Omen in one line for stderr."""

from __future__ import annotations

from typing import Any


class Refused(Exception):
    """The daemon could not be asked, or refused: one line for stderr."""


def admin_call(
    method: str,
    url: str,
    path: str,
    credential: str | None,
    body: object = None,
    *,
    what: str = "refused",
    timeout: float = 30,
) -> dict[str, Any]:
    """One JSON call to the daemon; anything but a 2xx from Omen raises Refused, its message
    starting with `what`."""
    import httpx  # here: every other `omen` command starts without it

    headers = {"authorization": f"Bearer {credential}"} if credential else {}
    try:
        response = httpx.request(
            method, f"{url}{path}", json=body, headers=headers, timeout=timeout
        )
    except httpx.HTTPError as exc:
        raise Refused(f"cannot reach the daemon at {url}: {exc}") from None
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise Refused(
            f"{url} did not answer like Omen's admin API (HTTP {response.status_code}); "
            "is --url right?"
        )
    if not response.is_success:
        error = data.get("error")
        message = (error.get("message") if isinstance(error, dict) else None) or (
            f"HTTP {response.status_code}"
        )
        hint = ""
        if response.status_code == 401 and not credential:
            hint = " (set OMEN_ADMIN_KEY to an admin-scope key, or sign in with `omen login`)"
        raise Refused(f"{what} ({response.status_code}): {message}{hint}")
    return data
