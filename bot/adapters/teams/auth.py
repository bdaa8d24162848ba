"""Who may talk to ``/api/messages``, and the token Blendwise shows the Bot Connector.

Inbound: every activity carries ``Authorization: Bearer <JWT>`` signed by the Bot Framework. The Microsoft 365
Agents SDK validates it (:class:`JwtTokenValidator`: RS256 signature against the issuer's published keys, expiry,
audience = our app id, issuer allow-list), and anything missing, unsigned, wrongly signed, expired or meant for
another app is refused with 401 before the body is read. The only thing changed here is *where the keys come from*
when ``teams.openid_metadata_url`` is set (tests run a local issuer): the SDK still does every check.

Outbound: the connector wants an app token for ``https://api.botframework.com``; the SDK's MSAL provider gets and
caches it from the app id and its secret or certificate.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

from microsoft_agents.hosting.core import AgentAuthConfiguration, JwtTokenValidator
from microsoft_agents.hosting.core.authorization import AuthTypes
from microsoft_agents.hosting.core.authorization.jwt.jwt_token_validator import _JwkClientManager

log = logging.getLogger(__name__)

#: The audience of the Bot Connector's tokens and the scope an app token is asked for.
CONNECTOR_RESOURCE = "https://api.botframework.com"
CONNECTOR_SCOPES = [f"{CONNECTOR_RESOURCE}/.default"]

TokenProvider = Callable[[], Awaitable[str]]


class Unauthorized(Exception):
    """The request's bearer token was missing or refused (the reason is logged, never returned)."""


class _KeysFrom(_JwkClientManager):
    """The SDK's signing-key cache, reading every key from one JWKS URL (the overriding issuer's)."""

    def __init__(self, jwks_uri: str) -> None:
        super().__init__()
        self._jwks_uri = jwks_uri

    def _get_jwk_client(self, jwks_uri: str) -> Any:
        return super()._get_jwk_client(self._jwks_uri)


def jwks_uri_of(metadata_url: str) -> str:
    """The ``jwks_uri`` an OpenID metadata document names."""
    with urllib.request.urlopen(metadata_url, timeout=10) as answer:  # noqa: S310 - an operator-set URL
        metadata = json.load(answer)
    uri = metadata.get("jwks_uri") if isinstance(metadata, dict) else None
    if not isinstance(uri, str):
        raise ValueError(f"{metadata_url} names no jwks_uri")
    return uri


def auth_configuration(
    app_id: str, *, tenant_id: str | None = None, secret: str | None = None, certificate: str | None = None,
    issuers: list[str] | None = None, authority: str | None = None,
) -> AgentAuthConfiguration:
    """The SDK's configuration for this bot: audience, issuers (validated, not only listed), credentials and the
    authority MSAL asks for app tokens (``None``: ``https://login.microsoftonline.com/<tenant>``)."""
    return AgentAuthConfiguration(
        authority=authority,
        auth_type=AuthTypes.certificate if certificate else AuthTypes.client_secret,
        client_id=app_id,
        tenant_id=tenant_id,
        client_secret=secret,
        cert_pfx_file=certificate,
        issuers=issuers,
        validate_issuer=True,
    )


class InboundAuth:
    """Validates bearer tokens with the SDK.

    Args:
        config: the SDK configuration (:func:`auth_configuration`).
        openid_metadata_url: where the signing keys are published, when not the Bot Framework's.
    """

    def __init__(self, config: AgentAuthConfiguration, openid_metadata_url: str | None = None) -> None:
        self.validator = JwtTokenValidator(config)
        self._metadata_url = openid_metadata_url
        self._overridden = openid_metadata_url is None

    def _keys(self) -> None:
        if not self._overridden and self._metadata_url is not None:
            self.validator._jwk_client_manager = _KeysFrom(jwks_uri_of(self._metadata_url))
            self._overridden = True

    async def claims(self, authorization: str | None) -> dict[str, Any]:
        """The validated claims of ``Authorization: Bearer <token>``.

        Raises:
            Unauthorized: no token, not a bearer token, or the SDK refused it (any reason).
        """
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("no bearer token")
        try:
            self._keys()
            identity = await self.validator.validate_token(token.strip())
        except Exception as exc:  # PyJWT's errors, ValueError, and a KeyError for a token without a key id
            log.warning("refused an activity's token: %s", type(exc).__name__)
            raise Unauthorized(type(exc).__name__) from None
        return dict(identity.claims or {})


def msal_token_provider(config: AgentAuthConfiguration) -> TokenProvider:
    """App tokens for the connector from the SDK's MSAL provider (cached and refreshed by MSAL)."""
    from microsoft_agents.authentication.msal import MsalAuth

    auth = MsalAuth(config)

    async def token() -> str:
        return await auth.get_access_token(CONNECTOR_RESOURCE, CONNECTOR_SCOPES)

    return token
