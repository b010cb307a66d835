"""Notifications: a failed or crashed job run is reported to the operator's webhook and/or
e-mail address.

The webhook is one Prefect block document (`CustomWebhookNotificationBlock`, in Prefect core)
named `bingobackup-notify`, the e-mail one `SmtpEmailNotification` (deployments/mail.py) named
`bingobackup-notify-email`; every job's deployment owns one automation that sends to each of
them when a run of that deployment ends Failed or Crashed. The Prefect server sends it (its triggers and
actions services, on by default), so a notification goes out even when the worker's host died
with the run. A backup where some VMs failed ends Failed (flows/backup.py), so it is covered.

Changing the webhook or the e-mail settings updates its block in place: the automations keep
pointing at it. Setting one channel leaves the other as it is; the automations are rewritten
to send to every configured one.
"""

from __future__ import annotations

from typing import cast
from urllib.parse import urlsplit
from uuid import UUID

from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import BlockDocument
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.exceptions import ObjectNotFound

from bingobackup.errors import BingoBackupError
from deployments.mail import SmtpEmailNotification

BLOCK_NAME = "bingobackup-notify"
EMAIL_BLOCK_NAME = "bingobackup-notify-email"
NOTIFIED_EVENTS = frozenset({"prefect.flow-run.Failed", "prefect.flow-run.Crashed"})

# Rendered by the Prefect server (Jinja). Names, state and message only, never the run's
# parameters; the state message is the one `job start --wait` and the UI show, free of keys
# and passphrases as every engine error is. The run's link needs the server's PREFECT_UI_URL.
SUBJECT = "bingobackup: job {{ deployment.name }} run {{ flow_run.state.name }}"
BODY = (
    "Job {{ deployment.name }}: run {{ flow_run.name }} ({{ flow_run.id }}) ended "
    "{{ flow_run.state.name }} at {{ flow_run.state.timestamp }}.\n"
    "{{ flow_run.state.message }}\n"
    "See `bingobackup job show {{ deployment.name }}`"
    "{% if flow_run|ui_url %} or {{ flow_run|ui_url }}{% endif %}."
)


class NotifyError(BingoBackupError):
    """A webhook that cannot be used."""


def _automation_name(job: str) -> str:
    return f"bingobackup-job-failed:{job}"


def _owner(deployment_id: UUID) -> str:
    return f"prefect.deployment.{deployment_id}"


def check_webhook_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotifyError(
            f"'{url}' is not an http(s) URL. Give the webhook's full URL, e.g. https://host/path."
        )
    if parts.username or parts.password:
        # The block shows its URL to anyone with the Prefect UI, and errors quote it.
        raise NotifyError(
            "The webhook URL carries a user name or password. Give it without them; a receiver that "
            "needs a token takes it in the URL path or query, which only Prefect UI users see."
        )
    return url


def set_webhook(url: str) -> UUID:
    """Save (or replace in place) the notification block; returns its block document id."""
    block = CustomWebhookNotificationBlock(
        name=BLOCK_NAME,
        url=check_webhook_url(url),
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
    )
    return cast(UUID, block.save(BLOCK_NAME, overwrite=True))


def _document(client: SyncPrefectClient, name: str, slug: str) -> BlockDocument | None:
    """The block document, read without its secrets, or None when there is none."""
    try:
        return client.read_block_document_by_name(name, block_type_slug=slug, include_secrets=False)
    except ObjectNotFound:
        return None


def webhook_block_id(client: SyncPrefectClient) -> UUID | None:
    """The notification block's id, or None when no webhook is configured."""
    document = _document(client, BLOCK_NAME, _block_slug())
    return None if document is None else document.id


def set_email(block: SmtpEmailNotification) -> UUID:
    """Save (or replace in place) the e-mail block (`deployments.mail.email_block`); its id."""
    return cast(UUID, block.save(EMAIL_BLOCK_NAME, overwrite=True))


def email_block_id(client: SyncPrefectClient) -> UUID | None:
    """The e-mail block's id, or None when no e-mail address is configured."""
    document = _email_document(client)
    return None if document is None else document.id


def email_summary(client: SyncPrefectClient) -> str | None:
    """Where the mails go and through which server (no password), or None."""
    document = _email_document(client)
    if document is None:
        return None
    data = document.data  # read without secrets: the password is masked anyway
    login = f", logging in as {data['smtp_user']}" if data.get("smtp_user") else ""
    return f"{data['to']} (from {data['sender']}, via {data['smtp_host']}:{data['smtp_port']} {data['security']}{login})"


def _email_document(client: SyncPrefectClient) -> BlockDocument | None:
    return _document(client, EMAIL_BLOCK_NAME, str(SmtpEmailNotification.get_block_type_slug()))


def clear_email(client: SyncPrefectClient) -> bool:
    """Delete the e-mail block; False when there was none. The caller drops the automations."""
    return _delete(client, email_block_id(client))


def _delete(client: SyncPrefectClient, block_id: UUID | None) -> bool:
    if block_id is None:
        return False
    client.delete_block_document(block_id)
    return True


def webhook_url(client: SyncPrefectClient) -> str | None:
    document = _document(client, BLOCK_NAME, _block_slug())
    return None if document is None else str(document.data.get("url"))


def clear_webhook(client: SyncPrefectClient) -> bool:
    """Delete the notification block; False when there was none. The caller drops the automations."""
    return _delete(client, webhook_block_id(client))


def _block_slug() -> str:
    return str(CustomWebhookNotificationBlock.get_block_type_slug())


def sync_job_automation(client: SyncPrefectClient, job: str, deployment_id: UUID) -> bool:
    """Make the job's automation match the configured webhook and e-mail: replaced when there
    is one (an edit changes nothing it names, but replacing is simpler than comparing), removed
    when there is none. True when the job now notifies."""
    drop_job_automation(client, deployment_id)
    block_ids = [b for b in (webhook_block_id(client), email_block_id(client)) if b is not None]
    if not block_ids:
        return False
    client.create_automation(
        AutomationCore(
            name=_automation_name(job),
            description=f"Sends a notification when a run of bingobackup job {job} fails or crashes.",
            trigger=EventTrigger(
                expect=set(NOTIFIED_EVENTS),
                match_related={"prefect.resource.id": _owner(deployment_id)},
                posture=Posture.Reactive,
                threshold=1,
            ),
            actions=[
                SendNotification(block_document_id=block_id, subject=SUBJECT, body=BODY)
                for block_id in block_ids
            ],
            owner_resource=_owner(deployment_id),
        )
    )
    return True


def drop_job_automation(client: SyncPrefectClient, deployment_id: UUID) -> None:
    client.delete_resource_owned_automations(_owner(deployment_id))
