"""Bearer-token authentication, the same for gRPC metadata and HTTP headers.

Both transports carry the credential as ``authorization: Bearer <token>`` (gRPC metadata
keys are lower case; HTTP header names are case-insensitive), so one check serves both.
Tokens are compared in constant time so that response timing does not leak them.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from faultlens.config.model import AuthConfig
from faultlens.errors import Unauthenticated

__all__ = ["BearerAuth"]


class BearerAuth:
    """Checks an ``authorization`` value against the configured tokens; off when none are."""

    def __init__(self, config: AuthConfig) -> None:
        self._tokens = [t.encode() for t in config.bearer_tokens]

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def check(self, authorization: str | bytes | None) -> None:
        """Return when the credential is good (or auth is off); raise :class:`Unauthenticated`."""
        if not self._tokens:
            return
        if authorization is None:
            raise Unauthenticated("missing 'authorization: Bearer <token>'")
        if isinstance(authorization, bytes):
            authorization = authorization.decode("latin-1")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the authorization scheme must be 'Bearer <token>'")
        presented = token.strip().encode()
        # Compare against every token (no early exit) so timing does not say which matched.
        ok = False
        for expected in self._tokens:
            ok |= hmac.compare_digest(presented, expected)
        if not ok:
            raise Unauthenticated("invalid bearer token")

    def check_metadata(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> None:
        """The gRPC form: find ``authorization`` in the invocation metadata."""
        if not self._tokens:
            return
        value = None
        for key, v in metadata or ():
            if key.lower() == "authorization":
                value = v
                break
        self.check(value)
