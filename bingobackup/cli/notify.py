"""`bingobackup notify …`: where failed and crashed job runs are reported (a webhook the
Prefect server POSTs to), kept in step with every job."""

from __future__ import annotations

import typer

from bingobackup.cli.common import console, prefect_api

app = typer.Typer(
    help="Notifications of failed job runs: a webhook the Prefect server calls.", no_args_is_help=True
)


@app.command("set")
def set_(
    webhook: str = typer.Option(..., "--webhook", help="URL the Prefect server POSTs each notification to"),
) -> None:
    """Report every job's failed or crashed runs to WEBHOOK (replaces the previous one)."""
    with prefect_api():
        from deployments.jobs import sync_notifications
        from deployments.notify import set_webhook

        set_webhook(webhook)
        jobs = sync_notifications()
    console.print(f"Failed and crashed runs are reported to {webhook}", highlight=False)
    console.print(f"  jobs notifying: {', '.join(jobs) if jobs else 'none yet (each new job will)'}")


@app.command()
def show() -> None:
    """The webhook failed runs are reported to."""
    with prefect_api():
        from prefect.client.orchestration import get_client

        from deployments.notify import webhook_url

        with get_client(sync_client=True) as client:
            url = webhook_url(client)
    console.print(
        f"Failed and crashed runs are reported to {url}"
        if url
        else "No notifications: set a webhook with `bingobackup notify set --webhook URL`.",
        highlight=False,
    )


@app.command()
def clear() -> None:
    """Stop reporting failed runs: removes the webhook and every job's automation."""
    with prefect_api():
        from prefect.client.orchestration import get_client

        from deployments.jobs import sync_notifications
        from deployments.notify import clear_webhook

        with get_client(sync_client=True) as client:
            had = clear_webhook(client)
        sync_notifications()
    console.print("Notifications cleared." if had else "No webhook was set; nothing to clear.")
