"""OIDC access-token verification against a real local issuer: roles from groups, every way a
token can be wrong refused with a reason that names it, keys rotated at the issuer picked up,
and an unknown kid never turned into a flood of requests to the issuer."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import orjson
import pytest

from omen.oidc import (
    Identity,
    OidcError,
    OidcForbidden,
    OidcSettings,
    OidcUnavailable,
    OidcVerifier,
)
from tests.oidc_issuer import (
    AUDIENCE,
    IssuerKey,
    OidcIssuer,
    ec_key,
    ed25519_key,
    hmac_token,
    in_process_client,
    rsa_key,
    running_issuer,
    unsigned_token,
)

REFETCH_INTERVAL = 30.0


class FakeClock:
    """The verifier's monotonic clock (rate limit and cache age); token times stay real."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def main_key() -> IssuerKey:
    return rsa_key("key-1")


@pytest.fixture(scope="module")
def impostor_key() -> IssuerKey:
    """Another RSA key that claims the main key's kid."""
    return rsa_key("key-1")


@pytest.fixture(scope="module")
def served_issuer() -> Iterator[OidcIssuer]:
    with running_issuer(OidcIssuer()) as served:
        yield served


@pytest.fixture
def issuer(served_issuer: OidcIssuer, main_key: IssuerKey) -> OidcIssuer:
    served_issuer.reset(keys=[main_key])
    return served_issuer


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def settings_for(served: OidcIssuer, **changes: object) -> OidcSettings:
    values: dict[str, object] = {
        "issuer": served.url,
        "audience": AUDIENCE,
        "admin_groups": frozenset({"omen-admins"}),
        "viewer_groups": frozenset({"omen-viewers"}),
        "jwks_refetch_interval_s": REFETCH_INTERVAL,
    }
    values.update(changes)
    return OidcSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def verifier(issuer: OidcIssuer, client: httpx.AsyncClient, clock: FakeClock) -> OidcVerifier:
    return OidcVerifier(settings_for(issuer), client, clock=clock)


async def refused(verifier: OidcVerifier, token: str) -> OidcError:
    with pytest.raises(OidcError) as caught:
        await verifier.verify(token)
    said = f"{caught.value} {caught.value.reason!r}"
    assert not [part for part in token.split(".") if len(part) >= 8 and part in said]
    return caught.value


# --- roles -----------------------------------------------------------------------------------


async def test_admin_group_member_signs_in_as_admin(
    verifier: OidcVerifier, issuer: OidcIssuer
) -> None:
    exp = int(time.time()) + 300
    token = issuer.mint(exp=exp, groups=["staff", "omen-viewers", "omen-admins"])
    assert await verifier.verify(token) == Identity(
        subject="operator-1",
        role="admin",
        email="ops@example.com",
        name="Ada Operator",
        groups=("staff", "omen-viewers", "omen-admins"),
        expires_at=exp,
    )


async def test_viewer_group_member_signs_in_as_viewer(
    verifier: OidcVerifier, issuer: OidcIssuer
) -> None:
    token = issuer.mint(groups=["omen-viewers"], email=None, name=None, preferred_username="ada")
    identity = await verifier.verify(token)
    assert (identity.role, identity.email, identity.name) == ("viewer", None, "ada")


async def test_user_in_no_mapped_group_is_forbidden(
    verifier: OidcVerifier, issuer: OidcIssuer
) -> None:
    with pytest.raises(OidcForbidden, match="no group mapped to a role"):
        await verifier.verify(issuer.mint(groups=["staff"]))
    with pytest.raises(OidcForbidden):
        await verifier.verify(issuer.mint(groups=None))


async def test_groups_claim_may_be_a_dotted_path(
    issuer: OidcIssuer, client: httpx.AsyncClient
) -> None:
    verifier = OidcVerifier(settings_for(issuer, groups_claim="realm_access.roles"), client)
    token = issuer.mint(groups=None, realm_access={"roles": ["omen-admins"]})
    assert (await verifier.verify(token)).role == "admin"


@pytest.mark.parametrize("make_key", [ec_key, ed25519_key, lambda kid: rsa_key(kid, "PS256")])
async def test_other_asymmetric_key_types_verify(
    verifier: OidcVerifier, issuer: OidcIssuer, make_key: Callable[[str], IssuerKey]
) -> None:
    key = issuer.add_key(make_key("key-2"))
    assert (await verifier.verify(issuer.mint(key=key))).role == "admin"


# --- time claims -----------------------------------------------------------------------------


async def test_expired_token_is_refused(verifier: OidcVerifier, issuer: OidcIssuer) -> None:
    now = int(time.time())
    error = await refused(verifier, issuer.mint(iat=now - 600, exp=now - 120))
    assert error.reason == "token expired"


async def test_token_not_yet_valid_beyond_leeway_is_refused(
    verifier: OidcVerifier, issuer: OidcIssuer
) -> None:
    now = int(time.time())
    assert (await refused(verifier, issuer.mint(nbf=now + 120))).reason == "token not yet valid"
    assert (await refused(verifier, issuer.mint(iat=now + 120))).reason == "token not yet valid"


async def test_clock_skew_within_leeway_is_accepted(
    verifier: OidcVerifier, issuer: OidcIssuer
) -> None:
    now = int(time.time())
    token = issuer.mint(iat=now + 30, nbf=now + 30, exp=now - 30)
    assert (await verifier.verify(token)).role == "admin"


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "aud", "iss"])
async def test_token_missing_a_required_claim_is_refused(
    verifier: OidcVerifier, issuer: OidcIssuer, claim: str
) -> None:
    error = await refused(verifier, issuer.mint(**{claim: None}))
    assert error.reason == ("wrong issuer" if claim == "iss" else f"missing {claim} claim")


# --- audience and issuer ---------------------------------------------------------------------


async def test_wrong_audience_is_refused(verifier: OidcVerifier, issuer: OidcIssuer) -> None:
    assert (await refused(verifier, issuer.mint(aud="grafana"))).reason == "wrong audience"


async def test_audience_list_containing_ours_is_accepted(
    verifier: OidcVerifier, issuer: OidcIssuer
) -> None:
    assert (await verifier.verify(issuer.mint(aud=["grafana", AUDIENCE]))).role == "admin"


async def test_token_for_another_issuer_is_refused_without_asking_the_issuer(
    verifier: OidcVerifier, issuer: OidcIssuer
) -> None:
    error = await refused(verifier, issuer.mint(iss="https://login.other.example"))
    assert error.reason == "wrong issuer"
    assert issuer.jwks_fetches == 0


async def test_discovery_document_naming_another_issuer_is_refused(
    verifier: OidcVerifier, issuer: OidcIssuer
) -> None:
    issuer.discovery_overrides = {"issuer": "https://login.other.example"}
    with pytest.raises(OidcUnavailable, match="discovery document names another issuer"):
        await verifier.verify(issuer.mint())
    assert issuer.jwks_fetches == 0


async def test_discovery_pointing_keys_at_plain_http_elsewhere_is_refused(
    verifier: OidcVerifier, issuer: OidcIssuer
) -> None:
    issuer.discovery_overrides = {"jwks_uri": "http://keys.example/jwks"}
    with pytest.raises(OidcUnavailable, match="no usable jwks_uri"):
        await verifier.verify(issuer.mint())


# --- signatures and algorithms ---------------------------------------------------------------


async def test_signature_by_another_key_with_the_same_kid_is_refused(
    verifier: OidcVerifier, issuer: OidcIssuer, impostor_key: IssuerKey
) -> None:
    assert (await refused(verifier, issuer.mint(key=impostor_key))).reason == "bad signature"


async def test_tampered_claims_are_refused(verifier: OidcVerifier, issuer: OidcIssuer) -> None:
    header, _, signature = issuer.mint(groups=["omen-viewers"]).split(".")
    claims = issuer.claims(groups=["omen-admins"])
    payload = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    error = await refused(verifier, f"{header}.{payload}.{signature}")
    assert error.reason == "bad signature"


async def test_alg_none_is_refused(verifier: OidcVerifier, issuer: OidcIssuer) -> None:
    error = await refused(verifier, unsigned_token(issuer.claims(), "key-1"))
    assert error.reason == "algorithm none not allowed"
    assert issuer.jwks_fetches == 0


@pytest.mark.parametrize("form", ["pem", "jwk"])
async def test_hs256_keyed_with_the_public_key_is_refused(
    verifier: OidcVerifier, issuer: OidcIssuer, main_key: IssuerKey, form: str
) -> None:
    secret = main_key.public_pem() if form == "pem" else orjson.dumps(main_key.public_jwk())
    error = await refused(verifier, hmac_token(issuer.claims(), secret, "key-1"))
    assert error.reason == "algorithm HS256 not allowed"


async def test_algorithm_other_than_the_key_declares_is_refused(
    verifier: OidcVerifier, issuer: OidcIssuer, main_key: IssuerKey
) -> None:
    error = await refused(verifier, issuer.mint(alg="PS256"))  # key-1 declares RS256
    assert error.reason == "algorithm does not match the signing key"


async def test_algorithm_of_another_key_type_is_refused(
    verifier: OidcVerifier, issuer: OidcIssuer
) -> None:
    ec = issuer.add_key(ec_key("key-ec"))
    error = await refused(verifier, issuer.mint(key=ec, kid="key-1"))  # ES256 on an RSA kid
    assert error.reason == "algorithm does not match the signing key"


async def test_undeclared_alg_is_limited_to_the_key_type(
    verifier: OidcVerifier, issuer: OidcIssuer
) -> None:
    key = issuer.add_key(IssuerKey("key-2", "RS256", rsa_key("x").private_key, declare_alg=False))
    assert (await verifier.verify(issuer.mint(key=key, alg="PS384"))).role == "admin"


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # minting it
async def test_weak_rsa_key_is_refused(verifier: OidcVerifier, issuer: OidcIssuer) -> None:
    weak = issuer.add_key(rsa_key("key-weak", bits=1024))
    error = await refused(verifier, issuer.mint(key=weak))
    assert error.reason == "signing key unusable or too weak"


async def test_token_without_kid_is_refused(verifier: OidcVerifier, issuer: OidcIssuer) -> None:
    token = issuer.mint()
    header = base64.urlsafe_b64encode(orjson.dumps({"alg": "RS256", "typ": "JWT"}))
    stripped = header.rstrip(b"=").decode() + token[token.index(".") :]
    assert (await refused(verifier, stripped)).reason == "token names no signing key (kid)"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_RS256_HEADER = _b64(b'{"alg":"RS256","kid":"key-1"}')


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-token",
        "a.b",
        "a.b.c",
        f"{_b64(b'{not json')}.{_b64(b'{}')}.c2ln",
        f"{_RS256_HEADER}.{_b64(b'[1, 2]')}.c2ln",
        f"{_RS256_HEADER}.{_b64(b'not json')}.c2ln",
        "x" * 20_000,
    ],
    ids=["empty", "one-part", "two-parts", "garbage", "header", "list-claims", "claims", "huge"],
)
async def test_malformed_token_is_refused(
    verifier: OidcVerifier, issuer: OidcIssuer, token: str
) -> None:
    assert (await refused(verifier, token)).reason == "malformed token"
    assert issuer.jwks_fetches == 0


async def test_malformed_time_claim_is_refused(verifier: OidcVerifier, issuer: OidcIssuer) -> None:
    assert (await refused(verifier, issuer.mint(exp="tomorrow"))).reason == "malformed token"


# --- keys: unknown kid, rotation, rate limit, outage -----------------------------------------


async def test_unknown_kid_is_refused_after_one_refetch(
    verifier: OidcVerifier, issuer: OidcIssuer, clock: FakeClock
) -> None:
    await verifier.verify(issuer.mint())
    clock.advance(REFETCH_INTERVAL)
    stranger = rsa_key("key-unknown")
    assert (await refused(verifier, issuer.mint(key=stranger))).reason == "unknown signing key"
    assert issuer.jwks_fetches == 2
    assert issuer.discovery_fetches == 1


async def test_key_rotation_at_the_issuer_is_picked_up_on_an_unknown_kid(
    verifier: OidcVerifier, issuer: OidcIssuer, main_key: IssuerKey, clock: FakeClock
) -> None:
    assert (await verifier.verify(issuer.mint())).role == "admin"
    new_key = issuer.add_key(ec_key("key-2"))
    issuer.remove_key(main_key.kid)
    clock.advance(REFETCH_INTERVAL)

    assert (await verifier.verify(issuer.mint(key=new_key))).role == "admin"
    assert issuer.jwks_fetches == 2
    # The retired key is gone from the cache; its kid is now unknown.
    clock.advance(REFETCH_INTERVAL)
    assert (await refused(verifier, issuer.mint(key=main_key))).reason == "unknown signing key"


async def test_flood_of_unknown_kids_refetches_at_most_once_per_interval(
    verifier: OidcVerifier, issuer: OidcIssuer, clock: FakeClock
) -> None:
    await verifier.verify(issuer.mint())
    bogus = [issuer.mint(kid=f"bogus-{n}") for n in range(50)]

    for token in bogus:  # within the interval of the first fetch: nobody asks again
        assert (await refused(verifier, token)).reason == "unknown signing key"
    assert issuer.jwks_fetches == 1

    clock.advance(REFETCH_INTERVAL)
    errors = await asyncio.gather(*(verifier.verify(t) for t in bogus), return_exceptions=True)
    assert all(isinstance(e, OidcError) and e.reason == "unknown signing key" for e in errors)
    assert issuer.jwks_fetches == 2

    # A genuine rotation inside the quiet interval waits for the interval to pass.
    new_key = issuer.add_key(rsa_key("key-2"))
    assert (await refused(verifier, issuer.mint(key=new_key))).reason == "unknown signing key"
    clock.advance(REFETCH_INTERVAL)
    assert (await verifier.verify(issuer.mint(key=new_key))).role == "admin"
    assert issuer.jwks_fetches == 3


async def test_concurrent_first_requests_fetch_the_keys_once(
    verifier: OidcVerifier, issuer: OidcIssuer
) -> None:
    identities = await asyncio.gather(*(verifier.verify(issuer.mint()) for _ in range(20)))
    assert {identity.role for identity in identities} == {"admin"}
    assert (issuer.discovery_fetches, issuer.jwks_fetches) == (1, 1)


async def test_keys_are_refetched_once_the_cache_ttl_passes(
    issuer: OidcIssuer, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    verifier = OidcVerifier(settings_for(issuer, jwks_ttl_s=300.0), client, clock=clock)
    await verifier.verify(issuer.mint())
    clock.advance(299)
    await verifier.verify(issuer.mint())
    assert issuer.jwks_fetches == 1
    clock.advance(1)
    await verifier.verify(issuer.mint())
    assert issuer.jwks_fetches == 2


async def test_issuer_outage_keeps_the_cached_keys(
    issuer: OidcIssuer, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    verifier = OidcVerifier(settings_for(issuer, jwks_ttl_s=300.0), client, clock=clock)
    await verifier.verify(issuer.mint())
    issuer.jwks_status = 503
    clock.advance(600)
    assert (await verifier.verify(issuer.mint())).role == "admin"
    assert issuer.jwks_fetches == 2


async def test_unreachable_issuer_is_unavailable_and_not_hammered(
    issuer: OidcIssuer, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    issuer.jwks_status = 500
    verifier = OidcVerifier(settings_for(issuer), client, clock=clock)
    token = issuer.mint()
    with pytest.raises(OidcUnavailable, match="JWKS fetch failed: HTTP 500"):
        await verifier.verify(token)
    for _ in range(10):
        with pytest.raises(OidcUnavailable, match="retrying shortly"):
            await verifier.verify(token)
    assert issuer.jwks_fetches == 1

    issuer.jwks_status = 200
    clock.advance(REFETCH_INTERVAL)
    assert (await verifier.verify(token)).role == "admin"


async def test_refresh_keys_fails_fast_on_a_misconfigured_issuer(
    issuer: OidcIssuer, client: httpx.AsyncClient
) -> None:
    verifier = OidcVerifier(settings_for(issuer, issuer=issuer.url + "/realms/x"), client)
    with pytest.raises(OidcUnavailable, match="discovery document fetch failed: HTTP 404"):
        await verifier.refresh_keys()


async def test_issuer_served_in_process_over_https_url(main_key: IssuerKey) -> None:
    issuer = OidcIssuer(keys=[main_key])
    async with in_process_client(issuer) as http:
        verifier = OidcVerifier(settings_for(issuer), http)
        await verifier.refresh_keys()
        assert (await verifier.verify(issuer.mint())).subject == "operator-1"


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"issuer": "http://login.example"}, "https"),
        ({"issuer": "ftp://127.0.0.1"}, "https"),
        ({"audience": ""}, "audience"),
        ({"admin_groups": frozenset(), "viewer_groups": frozenset()}, "nobody could sign in"),
        ({"admin_groups": "omen-admins"}, "collection of group names"),
        ({"leeway_s": -1}, "leeway_s"),
    ],
)
def test_settings_refuse_unsafe_or_useless_values(changes: dict[str, object], message: str) -> None:
    issuer = OidcIssuer(url="https://login.example")
    with pytest.raises(ValueError, match=message):
        settings_for(issuer, **changes)


def test_settings_accept_loopback_http_and_group_lists() -> None:
    settings = settings_for(
        OidcIssuer(url="http://localhost:8080"), admin_groups=["a"], viewer_groups=("b",)
    )
    assert settings.admin_groups == frozenset({"a"})
    assert settings.viewer_groups == frozenset({"b"})
    assert settings.discovery_url == "http://localhost:8080/.well-known/openid-configuration"
    assert (settings.leeway_s, settings.groups_claim) == (60.0, "groups")


async def test_google_id_tokens_may_name_the_issuer_without_its_scheme(
    main_key: IssuerKey,
) -> None:
    # Google documents iss as "accounts.google.com" or "https://accounts.google.com".
    google = OidcIssuer(keys=[main_key])
    async with in_process_client(google, "https://accounts.google.com") as http:
        verifier = OidcVerifier(settings_for(google), http)
        assert (await verifier.verify(google.mint(iss="accounts.google.com"))).role == "admin"
        assert (await verifier.verify(google.mint())).role == "admin"
        error = await refused(verifier, google.mint(iss="google.com"))
        assert error.reason == "wrong issuer"


async def test_only_google_gets_the_schemeless_issuer(
    verifier: OidcVerifier, issuer: OidcIssuer
) -> None:
    bare = issuer.url.removeprefix("http://")
    assert (await refused(verifier, issuer.mint(iss=bare))).reason == "wrong issuer"
