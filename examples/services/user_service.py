"""The team's user service, as minigate's [enrich] asks it (stdlib only).

At every login and every refresh minigate POSTs what it knows of the caller:

    {"event": "login"|"refresh", "platform", "appid", "openid", "unionid"?,
     "device_type", "device_id"?, "sid"}

and puts what this service answers into the tokens:

    200 {"uid": "...", "roles": [...], "claims": {"name": "value"}}
        uid: our own id for the person (it becomes the user key minigate
        uses for grants and limits); roles: added to the [[roles]] grants;
        claims: short strings, sent upstream as X-Auth-Claim-<name>;
    403 the person is banned: no token (a refresh ends the session);
    anything else (5xx, a timeout, a broken answer): minigate answers 503
        and issues no token, so answer fast and always within the limits.

Roles and claims are asked again at every refresh: change USERS (or the
database it stands for) and the change reaches the tokens within
minigate's access_ttl. Reach this service from minigate only (a
NetworkPolicy, or 127.0.0.1): it tells anyone who asks who is an admin.

    python3 user_service.py 127.0.0.1:9100

    # minigate.toml
    [enrich]
    url = "http://127.0.0.1:9100/minigate/enrich"
    timeout = "2s"
"""
import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Our users, keyed the way minigate knows them: by unionid when the platform
# gives one (the same person across our apps), else by openid. The keys here
# are what the tests' stand-in WeChat hands out; yours come from your data.
USERS = {
    "unionid-alice": {"uid": "u_1001", "roles": ["user"], "claims": {"tier": "gold"}},
    "unionid-bob": {"uid": "u_1002", "roles": ["user", "admin"], "claims": {"tier": "staff"}},
    "openid-4c26d9074c27d89e": {"uid": "u_1003", "roles": ["auditor"], "claims": {}},
    "unionid-mallory": {"uid": "u_1004", "banned": True},
}
# Everyone else who logs in is an ordinary user we do not know yet (a real
# service would create the account here and answer its new uid).
NEWCOMER = {"roles": ["user"], "claims": {"tier": "free"}}

# The contract's limits: an answer beyond them is refused whole by minigate
# (503 to the client), so check them here, before anyone logs in.
MAX_ROLES, MAX_CLAIMS = 32, 16
# Roles, claim names and claim values together: what keeps every token
# within the 8 KiB minigate accepts.
MAX_ROLES_AND_CLAIMS = 3072
ROLE = re.compile(r"[\x21-\x2b\x2d-\x7e]{1,64}")  # visible ASCII but the comma
CLAIM_NAME = re.compile(r"[a-z0-9_]{1,32}")
VISIBLE = re.compile(r"[!-~]+")
MAX_REQUEST = 16 * 1024


def within_limits(answer):
    """Raises ValueError when minigate would refuse this answer."""
    uid = answer.get("uid")
    if uid is not None and not (len(uid) <= 128 and VISIBLE.fullmatch(uid)):
        raise ValueError(f"uid {uid!r}: 1-128 visible ASCII characters")
    roles = answer.get("roles", [])
    if len(roles) > MAX_ROLES or not all(ROLE.fullmatch(r) for r in roles):
        raise ValueError(f"roles {roles!r}: at most {MAX_ROLES}, 1-64 visible ASCII, no commas")
    claims = answer.get("claims", {})
    if len(claims) > MAX_CLAIMS:
        raise ValueError(f"{len(claims)} claims: at most {MAX_CLAIMS}")
    for name, value in claims.items():
        if not CLAIM_NAME.fullmatch(name):
            raise ValueError(f"claim name {name!r}: [a-z0-9_]{{1,32}}")
        if not (isinstance(value, str) and len(value) <= 256 and VISIBLE.fullmatch(value)):
            raise ValueError(f"claim {name}: 1-256 visible ASCII characters")
    size = sum(len(r) for r in set(roles)) + sum(len(k) + len(v) for k, v in claims.items())
    if size > MAX_ROLES_AND_CLAIMS:
        raise ValueError(f"roles and claims of {size} characters: at most {MAX_ROLES_AND_CLAIMS}")
    return answer


def answer_for(ask):
    """(status, body) for one question from minigate."""
    user = USERS.get(ask.get("unionid")) or USERS.get(ask["openid"])
    if user is None:
        return 200, NEWCOMER
    if user.get("banned"):
        return 403, {"error": "banned"}
    return 200, {"uid": user["uid"], "roles": user["roles"], "claims": user["claims"]}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if not 0 < length <= MAX_REQUEST:
                raise ValueError("no body, or too large")
            ask = json.loads(self.rfile.read(length))
            if not isinstance(ask, dict):
                raise ValueError("not a JSON object")
            if ask.get("event") not in ("login", "refresh") or not isinstance(ask.get("openid"), str):
                raise ValueError("not minigate's question")
        except ValueError:  # json.JSONDecodeError is one
            return self.reply(400, {"error": "bad request"})
        status, body = answer_for(ask)
        self.reply(status, body)

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    for entry in [NEWCOMER, *(u for u in USERS.values() if not u.get("banned"))]:
        within_limits(entry)
    host, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9100").rsplit(":", 1)
    ThreadingHTTPServer((host, int(port)), Handler).serve_forever()
