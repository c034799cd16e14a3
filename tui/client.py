"""AdminClient: the console's only way to act — the daemon's admin API over httpx.

Blocking calls, made from thread workers so the UI never waits on the network. Every failure
becomes an `AdminError` whose message an operator can act on (daemon down, key refused, the
daemon's own error text).

A fleet's console is given several daemons (`--url a,b`): every instance acts on the one
shared store, so any live one will do. The client talks to one at a time and moves on to the
next when it stops answering. A read is asked again of the next daemon whatever failed; an
action only when it never reached the daemon (the connection was refused or timed out), so a
drain or a replay is never sent twice.

The credential is an admin key or an operator's sign-in (`omen login`): it is asked for on
every request, so a signed-in operator's token is refreshed as it nears its expiry and a
console left open for a day keeps acting.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, Literal

import httpx

ReplayMode = Literal["same", "reroute", "named"]
Credential = str | Callable[[], str | None] | None  # a key, or what gives the current token

_HEALTH_TIMEOUT = 1.5
_REPLAY_TIMEOUT = 120.0  # a replay waits for a real upstream answer
_WHATIF_TIMEOUT = 60.0  # a week of decisions is a scan of up to a million rows


class AdminError(Exception):
    """An admin call failed; `status` is the HTTP status, None when nothing answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    @property
    def unreachable(self) -> bool:
        return self.status is None

    @property
    def refused(self) -> bool:
        """The key was missing, unknown or not admin-scoped."""
        return self.status in (401, 403)


class _Bearer(httpx.Auth):
    """Sends the credential of the moment as the bearer (none when there is none)."""

    def __init__(self, credential: Callable[[], str | None]) -> None:
        self._credential = credential

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._credential()
        if token:
            request.headers["authorization"] = f"Bearer {token}"
        yield request


def daemon_urls(urls: str | Sequence[str]) -> tuple[str, ...]:
    """`http://a:8080,http://b:8080` (or a list of such) as distinct URLs, in order."""
    given = [urls] if isinstance(urls, str) else list(urls)
    found: list[str] = []
    for text in given:
        for url in text.split(","):
            url = url.strip().rstrip("/")
            if url and url not in found:
                found.append(url)
    if not found:
        raise ValueError("no daemon URL given")
    return tuple(found)


class AdminClient:
    def __init__(
        self,
        base_url: str | Sequence[str],
        admin_key: Credential,
        *,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.urls = daemon_urls(base_url)
        self.instance: str | None = None  # the name the daemon talked to gave itself
        self._shared_store = False  # that daemon relays other instances' views (PostgreSQL)
        self._current = 0
        self._credential = admin_key if callable(admin_key) else (lambda: admin_key)
        auth = _Bearer(self._credential)
        self._http = [
            httpx.Client(base_url=url, auth=auth, timeout=timeout, transport=transport)
            for url in self.urls
        ]

    @property
    def has_key(self) -> bool:
        return bool(self._credential())

    @property
    def base_url(self) -> str:
        """The daemon the client talks to now."""
        return self.urls[self._current]

    @property
    def fleet(self) -> bool:
        """Several daemons given, or one that shares its store with others."""
        return len(self.urls) > 1 or self._shared_store

    @property
    def where(self) -> str:
        """Every daemon it may talk to, for messages."""
        return ", ".join(self.urls)

    def close(self) -> None:
        for http in self._http:
            http.close()

    # -- reads -----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """GET /health (no key needed): raises AdminError when the daemon cannot be reached."""
        return self._call("GET", "/health", timeout=_HEALTH_TIMEOUT)

    def endpoints(self) -> list[dict[str, Any]]:
        """The endpoints as the daemon sees them (in a fleet, with every instance's view
        under "instances"); notes the daemon's instance name."""
        data = self._call("GET", "/admin/endpoints")
        instance = data.get("instance")
        self.instance = str(instance) if instance else None
        endpoints: list[dict[str, Any]] = data.get("endpoints", [])
        self._shared_store = any("instances" in endpoint for endpoint in endpoints)
        return endpoints

    def whoami(self) -> dict[str, Any] | None:
        """GET /admin/whoami: {"subject", "email", "role", "via"} of the credential sent;
        None from a daemon that predates the route (404)."""
        try:
            return self._call("GET", "/admin/whoami")
        except AdminError as exc:
            if exc.status == 404:
                return None
            raise

    def containers(self) -> dict[str, Any]:
        """{"limits": {...}, "containers": [{container, limits, usage, spend, ...}]}."""
        return self._call("GET", "/admin/containers")

    def whatif(
        self,
        *,
        since: str = "24h",
        strategy: str | None = None,
        prefer_local: bool | None = None,
        container: str | None = None,
    ) -> dict[str, Any]:
        """GET /admin/whatif: `omen whatif --json` on the daemon's store and config (None
        keeps what each decision or its container had)."""
        params: dict[str, str] = {"since": since}
        if strategy is not None:
            params["strategy"] = strategy
        if prefer_local is not None:
            params["prefer_local"] = "true" if prefer_local else "false"
        if container is not None:
            params["container"] = container
        return self._call("GET", "/admin/whatif", params=params, timeout=_WHATIF_TIMEOUT)

    # -- actions ---------------------------------------------------------------------------

    def drain(self, provider: str, endpoint: str, reason: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"provider": provider, "endpoint": endpoint}
        if reason:
            body["reason"] = reason
        return self._call("POST", "/admin/endpoints/drain", json=body)

    def undrain(self, provider: str, endpoint: str) -> dict[str, Any]:
        body = {"provider": provider, "endpoint": endpoint}
        return self._call("POST", "/admin/endpoints/undrain", json=body)

    def set_budget(
        self, container: str, changes: Mapping[str, str | float | None]
    ) -> dict[str, Any]:
        """PUT the changed periods only; None puts a period back to its configured budget."""
        return self._call("PUT", f"/admin/containers/{container}/budget", json=dict(changes))

    def replay(
        self,
        request_id: str,
        mode: ReplayMode,
        provider: str | None = None,
        model: str | None = None,
    ) -> dict[str, Any]:
        """{"original": {...request row...}, "replay": {request_id, provider, model, ...}}."""
        body: dict[str, Any] = {"mode": mode}
        if mode == "named":
            if provider:
                body["provider"] = provider
            if model:
                body["model"] = model
        return self._call(
            "POST", f"/admin/requests/{request_id}/replay", json=body, timeout=_REPLAY_TIMEOUT
        )

    def feedback(self, request_id: str, score: float) -> dict[str, Any]:
        """POST /v1/feedback with the admin key, which may judge any container's request; a
        later verdict on the same request replaces the earlier one."""
        return self._call("POST", "/v1/feedback", json={"request_id": request_id, "score": score})

    # -- plumbing --------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        failures: list[str] = []
        count = len(self.urls)
        for index in [(self._current + step) % count for step in range(count)]:
            try:
                response = self._http[index].request(
                    method,
                    path,
                    json=json,
                    params=params,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.HTTPError as exc:
                detail = str(exc) or type(exc).__name__
                failures.append(f"{self.urls[index]} ({detail})")
                if method == "GET" or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                    continue  # nothing was done there: the next daemon may do it
                raise AdminError(
                    f"no answer from {self.urls[index]} ({detail}); it may have been done"
                ) from None
            self._talk_to(index)
            return _answer(response, method, path)
        raise AdminError(f"daemon unreachable at {'; '.join(failures)}") from None

    def _talk_to(self, index: int) -> None:
        if index != self._current:
            self._current = index
            self.instance = None  # until this daemon says its name


def _answer(response: httpx.Response, method: str, path: str) -> dict[str, Any]:
    if response.status_code >= 400:
        raise AdminError(_error_message(response), response.status_code)
    try:
        data = response.json()
    except ValueError:
        raise AdminError(
            f"{method} {path}: the daemon answered something that is not JSON",
            response.status_code,
        ) from None
    if not isinstance(data, dict):
        raise AdminError(f"{method} {path}: unexpected answer", response.status_code)
    return data


def _error_message(response: httpx.Response) -> str:
    """The daemon's OpenAI-shaped error message, with a hint for key problems."""
    message = ""
    try:
        error = response.json().get("error")
        if isinstance(error, dict):
            message = str(error.get("message") or "")
    except (ValueError, AttributeError):
        pass
    message = message or response.reason_phrase or "error"
    if response.status_code in (401, 403):
        message += (
            " — set OMEN_ADMIN_KEY or an admin-scope key in [auth] api_keys, or sign in with "
            "`omen login`"
        )
    return f"HTTP {response.status_code}: {message}"
