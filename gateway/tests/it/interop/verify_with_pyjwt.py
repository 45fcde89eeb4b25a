"""Verify minigate tokens with PyJWT, using only the gateway's published JWKS.

usage: verify_with_pyjwt.py BASE_URL ISSUER AUDIENCE ACCESS_TOKEN REFRESH_TOKEN
Prints one line per check; exits non-zero on the first failure.
"""
import sys

import jwt  # PyJWT, with its JWK support (pip install 'pyjwt[crypto]')

base, issuer, audience, access, refresh = sys.argv[1:6]

client = jwt.PyJWKClient(f"{base}/.well-known/jwks.json")
key = client.get_signing_key_from_jwt(access)
header = jwt.get_unverified_header(access)
assert header["typ"] == "at+jwt", header
claims = jwt.decode(
    access,
    key.key,
    algorithms=[key.algorithm_name],
    audience=audience,
    issuer=issuer,
    options={"require": ["exp", "iat", "sub", "iss", "aud", "jti"]},
)
print(f"access ok: alg={key.algorithm_name} kid={header['kid']} sub={claims['sub']}")

# The discovery document points at the same JWKS.
import json
import urllib.request

disc = json.load(urllib.request.urlopen(f"{base}/.well-known/openid-configuration"))
assert disc["issuer"] == issuer, disc
assert header["alg"] in disc["id_token_signing_alg_values_supported"], disc

# The refresh token verifies with its own audience (the issuer), not the API's.
rkey = client.get_signing_key_from_jwt(refresh)
jwt.decode(refresh, rkey.key, algorithms=[rkey.algorithm_name], audience=issuer, issuer=issuer)
try:
    jwt.decode(refresh, rkey.key, algorithms=[rkey.algorithm_name], audience=audience, issuer=issuer)
except jwt.InvalidAudienceError:
    print("refresh ok: not valid for the API audience")
else:
    sys.exit("refresh token was accepted for the API audience")

# A tampered token fails PyJWT's verification too.
head, body, sig = access.split(".")
bad = ".".join([head, body[:-2] + ("AA" if body[-2:] != "AA" else "BB"), sig])
try:
    jwt.decode(bad, key.key, algorithms=[key.algorithm_name], audience=audience, issuer=issuer)
except jwt.InvalidTokenError:
    print("tampered ok: refused")
else:
    sys.exit("tampered token accepted")
