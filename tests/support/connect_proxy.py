"""An HTTP CONNECT proxy for the tests, on 127.0.0.1 only, that tunnels
only to 127.0.0.1 and counts its tunnels.

    python3 connect_proxy.py PORT_FILE COUNT_FILE

Writes its port to PORT_FILE when ready, and appends one line
(`HOST:PORT`) to COUNT_FILE per tunnel it opened. Runs until killed.
"""

import os
import socket
import socketserver
import sys
import threading

PORT_FILE, COUNT_FILE = sys.argv[1:3]
LOCK = threading.Lock()


def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        f = self.request.makefile("rb")
        line = f.readline().decode("latin-1")
        while f.readline() not in (b"\r\n", b"\n", b""):
            pass
        parts = line.split()
        if len(parts) < 2 or parts[0] != "CONNECT":
            self.request.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return
        host, _, port = parts[1].rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            self.request.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            return
        upstream = socket.create_connection(("127.0.0.1", int(port)))
        with LOCK, open(COUNT_FILE, "a") as c:
            c.write(f"{host}:{port}\n")
        self.request.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        t = threading.Thread(target=pipe, args=(upstream, self.request), daemon=True)
        t.start()
        pipe(self.request, upstream)
        t.join()
        upstream.close()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


server = Server(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
