"""
Reading an OIDC ID token (a compact JWS) and checking it: its algorithm
(L{check_algorithm}), its signature by a key of its issuer (L{signed_claims})
and its claims (L{check_claims}), for trusted publishing and single sign-on
alike.

The JWT library is joserfc (imported where tokens are read): its keys are
typed, so an algorithm only verifies with a key of its own type and curve.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

from pypid.auth.issuer_keys import IssuerKeys
from pypid.auth.oidc_errors import TokenRefused, format_time, short

#: The signature algorithms accepted: RSA (PKCS#1 v1.5 and PSS), ECDSA and
#: EdDSA; public keys only. C{none} and C{HS*} never.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
              "EdDSA", "Ed25519")

#: The largest ID token accepted (GitHub's and GitLab's are 1 to 2 KiB).
MAX_TOKEN_SIZE = 16 << 10

_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def read_unverified(text: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """
    The header and claims of a compact JWS, before any signature check
    (only to choose the issuer and key: nothing else is believed yet).
    """
    parts = text.split(".") if isinstance(text, str) and len(text) <= MAX_TOKEN_SIZE else []
    if len(parts) != 3 or not parts[0] or not parts[1] \
            or not all(_BASE64URL.match(part) for part in parts):
        raise TokenRefused("not a JSON Web Token (three base64url parts separated by dots)")
    try:
        header, claims = (json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
                          for part in parts[:2])
    except (ValueError, TypeError, RecursionError):
        raise TokenRefused("not a JSON Web Token (its header or claims cannot be read)")
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenRefused("not a JSON Web Token (its header or claims are not JSON objects)")
    return header, claims


def check_algorithm(header: Mapping[str, Any]) -> str:
    """The token's C{alg}, if one of L{ALGORITHMS}; L{TokenRefused} for C{none}, HMAC, others."""
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise TokenRefused("the token names no algorithm (alg)")
    if alg.lower() == "none":
        raise TokenRefused("unsigned tokens (alg none) are refused")
    if alg.upper().startswith("HS"):
        raise TokenRefused(f"tokens signed with a shared secret (alg {short(alg)}) are "
                           "refused: only an issuer's public-key signatures are accepted")
    if alg not in ALGORITHMS:
        raise TokenRefused(f"the algorithm {short(alg)} is not accepted (accepted: "
                           f"{', '.join(ALGORITHMS)})")
    return alg


def check_claims(claims: Mapping[str, Any], url: str, audience: str, now: float,
                 leeway: float) -> None:
    """
    Check the signed claims: C{iss}, C{aud}, C{exp}, C{nbf} and C{iat} (with
    C{leeway} seconds), and that C{jti} and C{sub} are there; in that order,
    so the message does not depend on the token's key order (L{TokenRefused}).
    """
    from joserfc import errors as jose_errors
    from joserfc import jwt

    registry = jwt.JWTClaimsRegistry(now=int(now), leeway=int(leeway),
                                     iss={"essential": True, "value": url},
                                     aud={"essential": True, "value": audience})
    needed = {"iss": "the token names no issuer (iss)",
              "aud": "the token names no audience (aud)",
              "exp": "the token has no expiry (exp)",
              "iat": "the token does not say when it was issued (iat)",
              "jti": "the token has no jti claim (pypid needs it to refuse replays)",
              "sub": "the token has no sub claim"}
    exp, iat = claims.get("exp"), claims.get("iat")
    if _number(exp) and _number(iat) and exp - iat > MAX_ID_TOKEN_LIFETIME:
        raise TokenRefused(f"the token is valid for {int(exp - iat)} s; pypid takes ID tokens "
                           f"valid for {MAX_ID_TOKEN_LIFETIME} s at most")
    if _number(iat) and now - iat > MAX_ID_TOKEN_LIFETIME + leeway:
        raise TokenRefused(f"the token was issued at {format_time(iat)}, more than "
                           f"{MAX_ID_TOKEN_LIFETIME} s ago")
    for name in ("iss", "aud", "exp", "nbf", "iat", "jti", "sub"):
        value = claims.get(name)
        if value is None:
            if name in needed:
                raise TokenRefused(needed[name])
            continue
        try:
            if name == "sub":
                if not isinstance(value, str) or not value or len(value) > 255 \
                        or not value.isprintable():
                    raise TokenRefused("the token's sub claim is not a short printable text")
                continue
            getattr(registry, "validate_" + name)(value)
        except jose_errors.ExpiredTokenError:
            raise TokenRefused(f"the token expired at {format_time(value)}")
        except jose_errors.JoseError:
            raise TokenRefused(_claim_refusal(name, value, audience))


async def signed_claims(text: str, header: Mapping[str, Any], alg: str,
                        issuer: IssuerKeys) -> dict[str, Any]:
    """
    The claims of the compact JWS C{text}, not checked, once its signature
    verifies with the key of C{issuer} its header names (C{alg} allowed).

    @raise TokenRefused: no such key, or a signature that does not verify.
    @raise IssuerUnavailable: the issuer's keys cannot be had now.
    """
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenRefused("the token names no signing key (kid)")
    key = await issuer.key(kid)
    from joserfc import errors as jose_errors
    from joserfc import jwt
    try:
        token = jwt.decode(text, key, algorithms=[alg])
    except jose_errors.BadSignatureError:
        raise TokenRefused("the token's signature is not valid")
    except (jose_errors.InvalidKeyTypeError, jose_errors.InvalidKeyCurveError,
            jose_errors.UnsupportedKeyAlgorithmError,
            jose_errors.UnsupportedKeyUseError) as e:
        raise TokenRefused(f"the key {short(kid)!r} cannot check an {alg} signature "
                           f"({e.description or e.error})")
    except jose_errors.JoseError as e:
        raise TokenRefused(f"the token cannot be read ({e.description or e.error})")
    return dict(token.claims)


#: The longest an ID token may be valid (C{exp - iat}), and the oldest
#: (C{iat}) it may be: CI systems' tokens live minutes (GitHub's) to the
#: length of a job (GitLab's, an hour by default). The replay cache is per
#: process, so this bounds how long a stolen token could be used again
#: after a restart or on another instance.
MAX_ID_TOKEN_LIFETIME = 2 * 3600


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _claim_refusal(name: str, value: object, audience: str) -> str:
    if name == "aud":
        return (f"the token is meant for another audience ({short(value)}); "
                f"this index accepts {audience!r}")
    if name == "iss":
        return f"the token's issuer {short(value)} is not the one its key belongs to"
    if name == "nbf" and isinstance(value, (int, float)):
        return f"the token is not valid before {format_time(value)}"
    if name == "iat" and isinstance(value, (int, float)):
        return f"the token says it was issued in the future ({format_time(value)})"
    if name == "jti":
        return "the token's jti claim is not a text"
    return f"the token's {name} claim is not valid"
