"""`bingobackup notify …`: where failed and crashed job runs are reported (a webhook the
Prefect server POSTs to, an e-mail address it mails through an SMTP server), kept in step with
every job."""

from __future__ import annotations

import os
import socket

import typer

from bingobackup.cli.common import console, prefect_api
from bingobackup.errors import BingoBackupError

app = typer.Typer(
    help="Notifications of failed job runs: a webhook the Prefect server calls, and/or an e-mail.",
    no_args_is_help=True,
)

SMTP_PASSWORD_VARIABLE = "BINGOBACKUP_SMTP_PASSWORD"


@app.command("set")
def set_(
    webhook: str | None = typer.Option(
        None, "--webhook", help="URL the Prefect server POSTs each notification to"
    ),
    email: str | None = typer.Option(None, "--email", help="Address each notification is mailed to"),
    smtp_host: str | None = typer.Option(None, "--smtp-host", help="With --email: the SMTP server"),
    smtp_port: int = typer.Option(587, "--smtp-port", help="With --email: the SMTP server's port"),
    smtp_security: str = typer.Option(
        "starttls", "--smtp-security", help="With --email: starttls (587), ssl (465) or plain (a local relay)"
    ),
    smtp_user: str | None = typer.Option(
        None,
        "--smtp-user",
        help=f"With --email: log in as this user; the password from {SMTP_PASSWORD_VARIABLE}, else asked",
    ),
    sender: str | None = typer.Option(
        None, "--from", help="With --email: the From address (default bingobackup@<this host's name>)"
    ),
) -> None:
    """Report every job's failed or crashed runs to WEBHOOK and/or EMAIL (each replaces its
    previous setting; the other stays)."""
    if webhook is None and email is None:
        raise BingoBackupError("Give --webhook URL, --email ADDRESS (with --smtp-host), or both.")
    mail_block = None
    if email is not None:
        from deployments.mail import email_block

        if not smtp_host:
            raise BingoBackupError("--email needs --smtp-host: the SMTP server that sends the mail.")
        if smtp_security not in ("starttls", "ssl", "plain"):
            raise BingoBackupError(f"--smtp-security must be starttls, ssl or plain, not '{smtp_security}'.")
        password = None
        if smtp_user:
            password = os.environ.get(SMTP_PASSWORD_VARIABLE) or typer.prompt(
                f"SMTP password of {smtp_user}", hide_input=True
            )
        mail_block = email_block(
            email,
            sender or f"bingobackup@{socket.getfqdn()}",
            smtp_host,
            smtp_port,
            smtp_security,  # type: ignore[arg-type]  # checked above
            smtp_user,
            password,
        )
    with prefect_api():
        from deployments.jobs import sync_notifications
        from deployments.notify import check_webhook_url, set_email, set_webhook

        if webhook is not None:
            set_webhook(check_webhook_url(webhook))
        if mail_block is not None:
            set_email(mail_block)
        jobs = sync_notifications()
    if webhook is not None:
        console.print(f"Failed and crashed runs are reported to {webhook}", highlight=False)
    if mail_block is not None:
        console.print(
            f"Failed and crashed runs are mailed to {mail_block.to} via {mail_block.smtp_host}:"
            f"{mail_block.smtp_port} ({mail_block.security})",
            highlight=False,
        )
    console.print(f"  jobs notifying: {', '.join(jobs) if jobs else 'none yet (each new job will)'}")


@app.command()
def show() -> None:
    """The webhook and e-mail address failed runs are reported to."""
    with prefect_api():
        from prefect.client.orchestration import get_client

        from deployments.notify import email_summary, webhook_url

        with get_client(sync_client=True) as client:
            url = webhook_url(client)
            mail = email_summary(client)
    if url:
        console.print(f"Failed and crashed runs are reported to {url}", highlight=False)
    if mail:
        console.print(f"Failed and crashed runs are mailed to {mail}", highlight=False)
    if not url and not mail:
        console.print(
            "No notifications: set a webhook or an e-mail address with `bingobackup notify set "
            "--webhook URL` or `--email ADDRESS --smtp-host HOST`.",
            highlight=False,
        )


@app.command()
def clear() -> None:
    """Stop reporting failed runs: removes the webhook, the e-mail settings and every job's automation."""
    with prefect_api():
        from prefect.client.orchestration import get_client

        from deployments.jobs import sync_notifications
        from deployments.notify import clear_email, clear_webhook

        with get_client(sync_client=True) as client:
            had = [clear_webhook(client), clear_email(client)]
        sync_notifications()
    console.print("Notifications cleared." if any(had) else "No notifications were set; nothing to clear.")
