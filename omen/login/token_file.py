"""The operator's stored sign-ins: `$XDG_CONFIG_HOME/omen/tokens.json` (else
`~/.config/omen/tokens.json`), one entry per issuer (`"github"` for GitHub), readable by its
owner only (the file 0600, a folder made for it 0700).

Every change is a read-modify-write under an exclusive lock on `tokens.json.lock`, written to
a temporary file and renamed over the old one: a reader never sees half a file, and two
processes refreshing at once (the console and `omen keys`) do not lose each other's tokens.
Tokens never appear in a repr, so a log line or a traceback does not carry them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

GITHUB = "github"  # the key of a GitHub sign-in (GitHub has no OIDC issuer for people)
_VERSION = 1


@dataclass(frozen=True, slots=True)
class SignedInAs:
    """Who the tokens belong to, as they say (unverified: for display; the daemon checks)."""

    subject: str | None = None
    email: str | None = None
    name: str | None = None
    groups: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.email or self.subject or self.name or "someone"


@dataclass(frozen=True, slots=True)
class StoredLogin:
    key: str  # the issuer's URL, or "github"
    client_id: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)
    # Google's device flow wants its (not secret) client secret at the token endpoint.
    client_secret: str | None = field(default=None, repr=False)
    expires_at: float | None = None  # seconds since the epoch; None: the token does not say
    token_endpoint: str | None = None  # where the refresh token is redeemed
    audience: str | None = None
    who: SignedInAs = SignedInAs()
    signed_in_at: float = 0.0

    @property
    def bearer(self) -> str:
        """What the admin API is sent: the access token when it is a JWT (the daemon checks it
        against the issuer's keys), else the ID token (Google's access tokens are opaque, its
        ID tokens JWTs), else the opaque token itself (GitHub's)."""
        if self.id_token and not looks_like_jwt(self.access_token):
            return self.id_token
        return self.access_token

    def expires_within(self, seconds: float, now: float) -> bool:
        return self.expires_at is not None and self.expires_at - now <= seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "id_token": self.id_token,
            "client_secret": self.client_secret,
            "expires_at": self.expires_at,
            "token_endpoint": self.token_endpoint,
            "audience": self.audience,
            "identity": {
                "subject": self.who.subject,
                "email": self.who.email,
                "name": self.who.name,
                "groups": list(self.who.groups),
            },
            "signed_in_at": self.signed_in_at,
        }

    @classmethod
    def from_json(cls, key: str, data: Mapping[str, Any]) -> StoredLogin | None:
        """The entry, or None when it is not one this version can use."""
        token, client_id = data.get("access_token"), data.get("client_id")
        if not isinstance(token, str) or not token or not isinstance(client_id, str):
            return None
        who = data.get("identity")
        who = who if isinstance(who, dict) else {}
        return cls(
            key=key,
            client_id=client_id,
            access_token=token,
            refresh_token=_text(data.get("refresh_token")),
            id_token=_text(data.get("id_token")),
            client_secret=_text(data.get("client_secret")),
            expires_at=_number(data.get("expires_at")),
            token_endpoint=_text(data.get("token_endpoint")),
            audience=_text(data.get("audience")),
            who=SignedInAs(
                subject=_text(who.get("subject")),
                email=_text(who.get("email")),
                name=_text(who.get("name")),
                groups=tuple(g for g in who.get("groups") or () if isinstance(g, str)),
            ),
            signed_in_at=_number(data.get("signed_in_at")) or 0.0,
        )


@dataclass(slots=True)
class Logins:
    """The file's contents: every sign-in, and which was made last (the one used when the
    config names no issuer)."""

    by_key: dict[str, StoredLogin] = field(default_factory=dict)
    last: str | None = None
    changed: bool = False

    def put(self, login: StoredLogin, *, last: bool = False) -> None:
        self.by_key[login.key] = login
        if last:
            self.last = login.key
        self.changed = True

    def pop(self, key: str) -> StoredLogin | None:
        login = self.by_key.pop(key, None)
        if login is not None:
            self.changed = True
            if self.last == key:
                self.last = None
        return login


def default_path(env: Mapping[str, str] = os.environ) -> Path:
    """$XDG_CONFIG_HOME/omen/tokens.json, else ~/.config/omen/tokens.json (a relative
    XDG_CONFIG_HOME is ignored, as the XDG spec says)."""
    base = env.get("XDG_CONFIG_HOME", "")
    if base and Path(base).is_absolute():
        return Path(base) / "omen" / "tokens.json"
    try:
        home = Path.home()
    except RuntimeError:  # no $HOME and no passwd entry (a container's arbitrary uid)
        raise OSError("cannot tell where the home folder is: set XDG_CONFIG_HOME") from None
    return home / ".config" / "omen" / "tokens.json"


class TokenFile:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()

    def read(self) -> Logins:
        """What is stored now (nothing when there is no file or it is not ours to read)."""
        try:
            raw = self.path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return Logins()
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return Logins()  # not a file this code wrote: the next sign-in replaces it
        if not isinstance(document, dict) or not isinstance(document.get("logins"), dict):
            return Logins()
        logins = Logins()
        for key, data in document["logins"].items():
            login = StoredLogin.from_json(key, data) if isinstance(data, dict) else None
            if login is not None:
                logins.by_key[key] = login
        last = document.get("last")
        logins.last = last if isinstance(last, str) and last in logins.by_key else None
        return logins

    @contextlib.contextmanager
    def editing(self) -> Iterator[Logins]:
        """The contents, read under the lock and written back (atomically) if changed."""
        self._make_folder()
        with self._locked():
            logins = self.read()
            yield logins
            if logins.changed:
                self._write(logins)

    def _write(self, logins: Logins) -> None:
        document = {
            "version": _VERSION,
            "last": logins.last,
            "logins": {key: login.to_json() for key, login in logins.by_key.items()},
        }
        data = orjson.dumps(document, option=orjson.OPT_INDENT_2)
        # mkstemp creates the file 0600 before anything is in it; rename is atomic.
        handle, temporary = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def _make_folder(self) -> None:
        folder = self.path.parent
        if not folder.exists():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.chmod(0o700)  # whatever the umask

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if sys.platform == "win32":  # pragma: no cover - no flock; the rename is still atomic
            yield
            return
        import fcntl

        lock = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # One open file per holder: threads of one process exclude each other too.
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        finally:
            os.close(lock)


def looks_like_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
