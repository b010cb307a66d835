"""E-mail notifications: a Prefect notification block that sends through an SMTP server.

Prefect's core has no plain-SMTP block (its e-mail collection is another package, and its
Apprise blocks take a URL with the password inside, which the UI would show whole), so this
is ours. The Prefect server sends the notification (its actions service), so the class must
be importable there: `bingobackup server start` imports this module into the server
(bingobackup/cli/prefect_serve.py); a server started otherwise cannot send e-mail
(docs/deploy.md).

The SMTP password is a SecretStr field: Prefect keeps it in the block document's secret data,
which the API returns masked (`********`) unless a client asks for secrets; it is never put
in a message, log line or exception here.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from typing import Literal

from prefect.blocks.abstract import NotificationBlock, NotificationError
from pydantic import Field, SecretStr

from bingobackup.addresses import is_loopback
from bingobackup.errors import BingoBackupError

SmtpSecurity = Literal["starttls", "ssl", "plain"]
SMTP_TIMEOUT_SECONDS = 30


class MailSettingsError(BingoBackupError):
    """E-mail settings that cannot be used."""


class SmtpEmailNotification(NotificationBlock):
    """Sends each notification as one e-mail through an SMTP server."""

    _block_type_name = "bingobackup SMTP e-mail"
    _block_type_slug = "bingobackup-smtp-email"

    to: str = Field(description="address the notifications go to")
    sender: str = Field(description="the From address")
    smtp_host: str = Field(description="SMTP server host name")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    security: SmtpSecurity = Field(
        default="starttls", description="starttls (port 587), ssl (port 465) or plain (a relay on this host)"
    )
    smtp_user: str | None = Field(default=None, description="log in as this user (with smtp_password)")
    smtp_password: SecretStr | None = Field(default=None, description="the SMTP user's password")

    def message(self, body: str, subject: str | None) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = self.to
        message["Subject"] = subject or "bingobackup notification"
        message.set_content(body)
        return message

    def send(self, body: str, subject: str | None = None) -> None:
        """Send one mail now (blocking); NotificationError says why it was not sent."""
        message = self.message(body, subject)
        try:
            smtp: smtplib.SMTP
            if self.security == "ssl":
                context = ssl.create_default_context()
                smtp = smtplib.SMTP_SSL(
                    self.smtp_host, self.smtp_port, timeout=SMTP_TIMEOUT_SECONDS, context=context
                )
            else:
                smtp = smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=SMTP_TIMEOUT_SECONDS)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if self.smtp_user and self.smtp_password is not None:
                    smtp.login(self.smtp_user, self.smtp_password.get_secret_value())
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            # The class and the server's reply code name the fault; the exception text may quote
            # what we sent (never the password: smtplib sends it base64-encoded, and does not echo it).
            code = getattr(exc, "smtp_code", None)
            raise NotificationError(
                f"Cannot send the notification to {self.to} through {self.smtp_host}:{self.smtp_port}: "
                f"{type(exc).__name__}{f' {code}' if code else ''}"
            ) from None

    async def notify(self, body: str, subject: str | None = None) -> None:
        await asyncio.to_thread(self.send, body, subject)


def email_block(
    to: str,
    sender: str,
    smtp_host: str,
    smtp_port: int,
    security: SmtpSecurity,
    smtp_user: str | None,
    smtp_password: str | None,
) -> SmtpEmailNotification:
    """The block for these settings, checked; MailSettingsError says what is wrong."""
    for what, address in (("--email", to), ("--from", sender)):
        local, _, domain = address.rpartition("@")
        if not local or not domain or " " in address:
            raise MailSettingsError(f"{what} '{address}' is not an e-mail address like ops@example.com.")
    if bool(smtp_user) != bool(smtp_password):
        raise MailSettingsError(
            "Give --smtp-user together with its password (BINGOBACKUP_SMTP_PASSWORD, or typed when asked), "
            "or neither for a relay that takes mail without logging in."
        )
    if security == "plain" and smtp_password and not is_loopback(smtp_host):
        raise MailSettingsError(
            f"Refusing to send the SMTP password to {smtp_host} unencrypted: use --smtp-security starttls "
            "(port 587) or ssl (port 465); plain is for a relay on this host."
        )
    return SmtpEmailNotification(
        to=to,
        sender=sender,
        smtp_host=smtp_host,
        smtp_port=smtp_port,
        security=security,
        smtp_user=smtp_user or None,
        smtp_password=SecretStr(smtp_password) if smtp_password else None,
    )
