"""An upstream service behind minigate that trusts the X-Auth-* headers.

minigate strips every incoming x-auth-* header and sets them only from a
verified token, so a service that only minigate can reach (NetworkPolicy, or
127.0.0.1 in the sidecar layout) needs no token code at all.

    python3 trust_headers.py 127.0.0.1:9000
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        user = self.headers.get("X-Auth-Subject")
        if user is None:  # an optional or public route, called anonymously
            body, status = {"hello": "anonymous"}, 200
        else:
            body, status = {
                "hello": user,
                "appid": self.headers.get("X-Auth-Appid"),
                "unionid": self.headers.get("X-Auth-Unionid"),
                "session": self.headers.get("X-Auth-Session"),
                "request_id": self.headers.get("X-Request-Id"),
            }, 200
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    host, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9000").rsplit(":", 1)
    ThreadingHTTPServer((host, int(port)), Handler).serve_forever()
