"""A service that verifies minigate's access tokens itself, from the JWKS.

For services reached without going through minigate (another ingress, a
mesh, a job): fetch the gateway's JWKS (cached; PyJWKClient honours nothing
else, so keep its lifespan under the JWKS max-age of 300 s), pick the key by
kid, and check exactly what minigate checks: the key's own algorithm,
typ at+jwt, iss, aud, exp, nbf, iat.

    pip install 'pyjwt[crypto]'
    python3 verify_jwks.py https://auth.example.com api [JWKS_URL]   # a token per line on stdin

JWKS_URL defaults to ISSUER/.well-known/jwks.json.
"""
import sys

import jwt

ALGORITHMS = ["ES256", "EdDSA", "RS256"]


class Verifier:
    def __init__(self, issuer, audience, jwks_url=None):
        self.issuer = issuer
        self.audience = audience
        url = jwks_url or issuer.rstrip("/") + "/.well-known/jwks.json"
        self.keys = jwt.PyJWKClient(url, lifespan=240)

    def verify(self, token):
        header = jwt.get_unverified_header(token)
        if header.get("typ", "").lower().removeprefix("application/") != "at+jwt":
            raise jwt.InvalidTokenError("not an access token")
        if any(h in header for h in ("jwk", "jku", "x5u", "x5c", "crit")):
            raise jwt.InvalidTokenError("unsupported token header")
        key = self.keys.get_signing_key(header.get("kid", ""))
        # The algorithm is the key's, never the token's.
        return jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm_name] if key.algorithm_name in ALGORITHMS else [],
            audience=self.audience,
            issuer=self.issuer,
            leeway=30,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        )


if __name__ == "__main__":
    verifier = Verifier(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    status = 0
    for line in sys.stdin:
        token = line.strip()
        if not token:
            continue
        try:
            claims = verifier.verify(token)
            print("ok", claims["sub"], claims["client_id"], claims["sid"])
        except Exception as e:  # noqa: BLE001 - report and go on
            print("refused", type(e).__name__)
            status = 1
    sys.exit(status)
