"""The development mail sink: a real SMTP server that delivers nothing and
writes each message it receives as an `.eml` file under a directory.

    python -m services.shared.mail_sink --port 1025 --dir var/mail
    python -m services.shared.mail_sink --show-newest --dir var/mail

The second prints the newest mail's text part, decoded (the file itself is
the message as sent: its text is quoted-printable, so a link in it is wrapped
and `=3D`-encoded).

`make run` starts it (SMTP_URL smtp://127.0.0.1:1025), compose runs it as the
`mail` service, and the test suite reads what it received. Any credentials
are accepted, so an SMTP_URL with user:password works against it too. Never
for production: it keeps every mail, tokens and all, in plain files.
"""
import argparse
import asyncio
import email
import email.policy
import logging
import os
import signal
import time
import uuid
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

log = logging.getLogger("mail_sink")


class EmlWriter:
    """aiosmtpd's handler: each message becomes `<time>-<id>.eml`, written
    under a temporary name and renamed, so a reader never sees half a mail."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        content = envelope.original_content or b""
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        partial = os.path.join(self.directory, "." + name + ".part")
        with open(partial, "wb") as handle:
            handle.write(content)
        os.replace(partial, os.path.join(self.directory, name))
        log.info("mail for %s written to %s", ", ".join(envelope.rcpt_tos), name)
        return "250 Message accepted for delivery"


def accept_any_login(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    return AuthResult(success=True)


async def _stop_when_gone(pid: int, stopping: asyncio.Event) -> None:
    """Set stopping once process pid has exited (the process that started us)."""
    while not stopping.is_set():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            stopping.set()
            return
        except PermissionError:
            pass  # alive, someone else's
        await asyncio.sleep(1)


async def serve(host: str, port: int, directory: str, parent_pid: int | None = None) -> None:
    handler = EmlWriter(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="lifytp-mail-sink", authenticator=accept_any_login, auth_require_tls=False),
        host=host, port=port)
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    if parent_pid is not None:
        watch = asyncio.create_task(_stop_when_gone(parent_pid, stopping))  # noqa: F841 (kept until the end)
    log.info("mail sink on %s:%d writing to %s", host, port, directory)
    async with server:
        await stopping.wait()


def newest_mail_text(directory: str) -> str:
    """The newest .eml under directory as a reader sees it: To, Subject and the
    decoded text part."""
    names = [name for name in os.listdir(directory) if name.endswith(".eml")]
    if not names:
        return f"no mail in {directory} yet"
    newest = max(names, key=lambda name: os.path.getmtime(os.path.join(directory, name)))
    with open(os.path.join(directory, newest), "rb") as handle:
        message = email.message_from_binary_file(handle, policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    return f"To: {message['To']}\nSubject: {message['Subject']}\n\n{text}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", default="var/mail", help="where the .eml files go")
    parser.add_argument("--parent-pid", type=int, help="stop once this process has exited (make run's services)")
    parser.add_argument("--show-newest", action="store_true", help="print the newest mail's text and exit")
    args = parser.parse_args(argv)
    if args.show_newest:
        print(newest_mail_text(args.dir))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # aiosmtpd logs every SMTP command (and warns of its own deprecations).
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    asyncio.run(serve(args.host, args.port, args.dir, args.parent_pid))


if __name__ == "__main__":
    main()
