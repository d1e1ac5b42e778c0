"""Real receivers for notifications: an SMTP server (aiosmtpd) and an HTTP
server for the webhook, both on loopback ports, run in this process."""
import email
import email.policy
import http.server
import json
import socket
import threading

from aiosmtpd.controller import Controller


def free_local_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class _Collect:
    def __init__(self, sink):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.sink.lock:
            self.sink.messages.append({
                "from": envelope.mail_from,
                "rcpt": list(envelope.rcpt_tos),
                "subject": str(msg["Subject"]),
                "body": msg.get_content(),
                "msg": msg,
            })
        return "250 OK"


class SmtpSink:
    """An SMTP server that keeps every message it receives."""

    def __init__(self, port=None):
        self.port = port or free_local_port()
        self.messages = []
        self.lock = threading.Lock()
        self.controller = None

    def start(self):
        self.controller = Controller(_Collect(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def url(self):
        return f"smtp://127.0.0.1:{self.port}"

    def find(self, text):
        with self.lock:
            return [m for m in self.messages if text in m["subject"]]


class WebhookSink:
    """An HTTP server that keeps every JSON body POSTed to it."""

    def __init__(self):
        self.events = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                sink.events.append({"type": self.headers.get("Content-Type"),
                                    "json": json.loads(body)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/efm"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
