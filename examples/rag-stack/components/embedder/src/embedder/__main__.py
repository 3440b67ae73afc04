"""The embedder: a small HTTP service (standard library only).

GET /health          -> 200
GET /embed?text=...  -> {"tokens": [...], "vector": [...]} (a toy embedding)

It listens on `$HSM_BIND_HOST` (set by `cargo hsm up`: 0.0.0.0 when a
container uses it) and `$EMBEDDER_PORT`.
"""

import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

from tokenizer_lib import tokenize


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/health":
            self.reply(200, {"ok": True})
        elif url.path == "/embed":
            text = parse_qs(url.query).get("text", [""])[0]
            tokens = tokenize(text)
            self.reply(200, {"tokens": tokens, "vector": [len(t) for t in tokens]})
        else:
            self.reply(404, {"error": "not found"})

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print("embedder:", fmt % args, flush=True)


def main():
    host = os.environ.get("HSM_BIND_HOST", "127.0.0.1")
    port = int(os.environ.get("EMBEDDER_PORT", "8081"))
    print(f"embedder listening on {host}:{port}", flush=True)
    HTTPServer((host, port), Handler).serve_forever()


main()
