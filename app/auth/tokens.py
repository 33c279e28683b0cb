"""HS256 access tokens (pyjwt). Bearer header only; no cookies."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from app.core.errors import Unauthenticated
from app.db.models import Role

ALGORITHM = "HS256"
ISSUER = "ovozly"


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_in_s: int


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: uuid.UUID
    role: Role
    issued_at: datetime
    token_version: int
    """The user's `token_version` when the token was issued; a newer one revokes it."""


def issue_access_token(
    user_id: uuid.UUID,
    role: Role,
    *,
    key: str,
    expires_in_s: int,
    token_version: int = 0,
    now: datetime | None = None,
) -> AccessToken:
    issued = now or datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "role": role.value,
        "iss": ISSUER,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=expires_in_s)).timestamp()),
        "jti": uuid.uuid4().hex,
        "ver": token_version,
    }
    return AccessToken(jwt.encode(claims, key, algorithm=ALGORITHM), expires_in_s)


def decode_access_token(token: str, *, key: str) -> TokenClaims:
    try:
        # Pinning `algorithms` is what rejects `alg: none` and algorithm-confusion tokens.
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
        return TokenClaims(
            user_id=uuid.UUID(claims["sub"]),
            role=Role(claims.get("role", Role.AGENT)),
            issued_at=datetime.fromtimestamp(claims["iat"], UTC),
            token_version=int(claims.get("ver", 0)),
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("Access token has expired") from exc
    except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
        raise Unauthenticated("Invalid access token") from exc


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value; None when absent."""
    if authorization is None or not authorization.strip():
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization header must be 'Bearer <token>'")
    return token.strip()
