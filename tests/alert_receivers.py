"""Local stand-ins for the alert channels: an HTTP receiver (Slack webhook, JSON webhook) and an SMTP server.

Both record what they receive so a test can assert the exact message each channel got.
The HTTP receiver answers 500 on paths under /broken, to play a failing channel.
"""

from __future__ import annotations

import email
import email.policy
import http.server
import json
import socket
import threading
from dataclasses import dataclass, field

MAIL_FROM = "continuum@example.com"  # the `from_email` of the test's SMTP connection
MAIL_TO = "oncall@example.com"  # the address the test's route mails


@dataclass
class HttpReceiver:
    url: str
    received: list[dict] = field(default_factory=list)

    def on(self, path: str) -> list[dict]:
        return [r for r in self.received if r["path"] == path]


def start_http_receiver() -> tuple[HttpReceiver, http.server.HTTPServer]:
    receiver = HttpReceiver(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                payload = json.loads(body)
            except ValueError:
                payload = body.decode(errors="replace")
            receiver.received.append(
                {"path": self.path, "content_type": self.headers.get("Content-Type"), "body": payload}
            )
            status = 500 if self.path.startswith("/broken") else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"broken")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver.url = f"http://127.0.0.1:{server.server_port}"
    return receiver, server


@dataclass
class MailReceiver:
    port: int
    messages: list[email.message.EmailMessage] = field(default_factory=list)


def start_smtp_receiver():
    """An aiosmtpd server on a free loopback port; returns (receiver, controller)."""
    from aiosmtpd.controller import Controller

    class Handler:
        def __init__(self, receiver: MailReceiver):
            self.receiver = receiver

        async def handle_DATA(self, server, session, envelope):
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            message["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
            self.receiver.messages.append(message)
            return "250 OK"

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    receiver = MailReceiver(port=port)
    controller = Controller(Handler(receiver), hostname="127.0.0.1", port=port)
    controller.start()
    return receiver, controller


def mail_text(message) -> str:
    """The text of an alert mail (the HTML body without its <pre> wrapper, unescaped)."""
    import html

    part = message.get_body(preferencelist=("html", "plain"))
    content = part.get_content()
    return html.unescape(content.replace("<pre>", "").replace("</pre>", "")).strip()
