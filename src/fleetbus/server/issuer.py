"""Bearer tokens from an external issuer (OAuth 2 / OIDC): JWTs checked against the issuer's JWKS, mapped to
fleetbus scopes. Imported only when HTTP is served with `[jwt]` configured: PyJWT and cryptography cost start-up
time and memory every other transport does without."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import jwt
from mcp.server.auth.provider import AccessToken

from fleetbus.config import JwtSettings
from fleetbus.guard.scopes import ScopeError, parse_scopes

log = logging.getLogger(__name__)


class IssuedTokens:
    """JWTs from an external issuer (its keys fetched from its JWKS and cached), mapped to fleetbus scopes: the
    scope claim's values that are fleetbus scopes count, anything else (`openid`, `email`…) is ignored."""

    def __init__(self, settings: JwtSettings, default_audience: str) -> None:
        self.settings = settings
        self.audience = settings.audience or default_audience
        url = settings.jwks_url or settings.issuer.rstrip("/") + "/.well-known/jwks.json"
        self.keys = jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=10)

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            # Fetching the issuer's keys is blocking I/O (cached after the first time).
            key = await anyio.to_thread.run_sync(self.keys.get_signing_key_from_jwt, token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=self.settings.algorithms,
                audience=self.audience,
                issuer=self.settings.issuer,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            log.info("refused a JWT: %s", exc)
            return None
        name = claims.get(self.settings.name_claim)
        if not isinstance(name, str) or not name:
            log.info("refused a JWT without a %r claim", self.settings.name_claim)
            return None
        raw = claims.get(self.settings.scope_claim, [])
        offered = raw.split() if isinstance(raw, str) else [str(s) for s in raw] if isinstance(raw, list) else []
        hosts = claims.get(self.settings.hosts_claim) if self.settings.hosts_claim else None
        return AccessToken(
            token=f"jwt:{claims.get('jti', '')}",
            client_id=f"jwt:{name}",
            scopes=sorted(s for s in offered if _is_scope(s)),
            expires_at=int(claims["exp"]),
            subject=name,
            claims={"iss": self.settings.issuer, "hosts": hosts if isinstance(hosts, list) else None},
        )


def _is_scope(value: str) -> bool:
    try:
        parse_scopes([value])
    except ScopeError:
        return False
    return True
