"""A local mailbox: an SMTP server on loopback that keeps every message it receives.

On a laptop there is no mail relay, yet alerts and reports are sent by e-mail through
Airflow's SMTP connection. This server (aiosmtpd) accepts them and files each one into a
Maildir below ``<data_dir>/mailbox``, where any mail client, ``lakepulse mail`` or a test can
read it. With ``[smtp] managed = false`` Lakepulse sends to your own relay instead.

    python -m lakepulse.services.mailbox --host 127.0.0.1 --port 2525 --maildir DIR
"""

from __future__ import annotations

import argparse
import email
import email.policy
import mailbox
import signal
import smtplib
import sys
import threading
from collections.abc import Sequence
from email.message import EmailMessage
from functools import partial
from pathlib import Path

from lakepulse.services.process import Health, ServiceSpec
from lakepulse.settings import Settings


class MaildirHandler:
    """aiosmtpd handler: one Maildir file per message, recipients kept in a header."""

    def __init__(self, maildir: Path) -> None:
        self.box = mailbox.Maildir(maildir, create=True)

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content)
        # Bcc recipients are in the envelope only: keep them, as a mail relay's log would.
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.box.add(message)
        return "250 Message accepted for delivery"


def serve(host: str, port: int, maildir: Path) -> None:
    from aiosmtpd.controller import Controller

    # Reports carry inline charts: allow messages of up to 64 MB.
    controller = Controller(
        MaildirHandler(maildir), hostname=host, port=port, data_size_limit=64 * 1024 * 1024
    )
    controller.start()
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    print(f"mailbox listening on {host}:{port}, filing into {maildir}", flush=True)
    stopped.wait()
    controller.stop()


def read_messages(maildir: Path) -> list[EmailMessage]:
    """Every message in the mailbox, oldest first."""
    if not maildir.exists():
        return []
    box = mailbox.Maildir(maildir, create=False)
    found = []
    for key in box.iterkeys():
        path = maildir / ("new" if (maildir / "new" / key).exists() else "cur") / key
        found.append((path.stat().st_mtime_ns, key))
    return [
        email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        for _, key in sorted(found)
    ]


def mailbox_health(settings: Settings) -> Health:
    try:
        with smtplib.SMTP(settings.smtp.host, settings.smtp.port, timeout=5) as client:
            code, _ = client.noop()
    except OSError as exc:
        return Health(False, f"no SMTP server on {settings.smtp.host}:{settings.smtp.port}: {exc}")
    return Health(code == 250, f"SMTP NOOP answered {code}")


def spec(settings: Settings) -> ServiceSpec:
    command = [
        sys.executable, "-m", "lakepulse.services.mailbox",
        "--host", settings.smtp.host,
        "--port", str(settings.smtp.port),
        "--maildir", str(settings.mailbox_dir),
    ]  # fmt: skip
    return ServiceSpec(
        name="mailbox",
        command=command,
        health=partial(mailbox_health, settings),
        run_dir=settings.paths.data_dir,
        start_timeout=30.0,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local SMTP server filing mail into a Maildir.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.maildir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
