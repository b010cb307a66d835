"""`bingobackup notify set --webhook URL --email ADDRESS …`: a job run that fails (here partly:
one VM of two) is reported by the Prefect server to the webhook and mailed through the SMTP
server (receivers on 127.0.0.1 here), naming the job, the run, its state and the failed VM,
without secrets; `job edit` keeps the job's automation and `job delete` removes it."""

from __future__ import annotations

import email
import email.policy
import json
import queue
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from prefect.client.orchestration import get_client
from support.cli import invoke, refused, runner
from support.flow import POOL_PASSPHRASE, Registered
from support.secrets import leaks
from support.testkeys import ACCESS_KEY, SECRET_KEY

from bingobackup.cli.background import free_port
from bingobackup.cli.main import app
from deployments.jobs import read_job


@pytest.fixture
def webhook() -> Iterator[tuple[str, queue.Queue[dict[str, Any]]]]:
    """A webhook receiver on 127.0.0.1: (its URL, the JSON bodies POSTed to it)."""
    received: queue.Queue[dict[str, Any]] = queue.Queue()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.put(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()
        invoke("notify", "clear")


SMTP_USER, SMTP_PASSWORD = "backup-notices", "smtp password for tests"


@pytest.fixture
def mailbox() -> Iterator[tuple[int, queue.Queue[email.message.EmailMessage]]]:
    """An SMTP server on 127.0.0.1 that takes mail only after a login with SMTP_USER and
    SMTP_PASSWORD: (its port, the messages it received)."""
    received: queue.Queue[email.message.EmailMessage] = queue.Queue()

    class Handler:
        async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
            if not session.authenticated:
                return "530 Authentication required"
            assert isinstance(envelope.content, bytes)
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            received.put(message)  # type: ignore[arg-type]
            return "250 OK"

    def authenticate(
        server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: object
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        return AuthResult(success=ok)

    port = free_port(0)
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        # Login checked in handle_DATA: aiosmtpd warns about auth_required without TLS, and the
        # relay is on this host (the plain mode).
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


def job_automations(name: str) -> int:
    with get_client(sync_client=True) as client:
        return len(
            client.read_resource_related_automations(f"prefect.deployment.{read_job(name).deployment_id}")
        )


def test_a_failed_run_is_posted_to_the_webhook_and_mailed_and_the_automation_follows_the_job(
    registered: Registered,
    worker: subprocess.Popen[bytes],
    webhook: tuple[str, queue.Queue[dict[str, Any]]],
    mailbox: tuple[int, queue.Queue[email.message.EmailMessage]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BINGOBACKUP_POOL_PASSPHRASE", POOL_PASSPHRASE)
    url, received = webhook
    smtp_port, mails = mailbox
    name = f"notify-{registered.cloud}"
    spec_file = tmp_path / "job.yaml"
    # A partial backup: linux_local is backed up, centos6-legacy fails (its disk is gone).
    broken = next(i for i in registered.client.describe_instances() if i.name == "centos6-legacy")
    registered.volume_file(broken.block_devices[0].volume_id).unlink()
    spec = registered.spec(
        name=name, content=[{"vm": "linux_local"}, {"vm": "centos6-legacy"}], schedule={"kind": "manual"}
    )
    spec_file.write_text(yaml.safe_dump(spec))

    assert url in invoke("notify", "set", "--webhook", url)
    monkeypatch.setenv("BINGOBACKUP_SMTP_PASSWORD", SMTP_PASSWORD)
    mail_set = invoke(
        "notify", "set", "--email", "ops@example.com", "--from", "backup@example.com",
        "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp_port), "--smtp-security", "plain",
        "--smtp-user", SMTP_USER,
    )  # fmt: skip
    shown = invoke("notify", "show")
    assert url in shown and "mailed to ops@example.com" in shown and SMTP_USER in shown  # both channels
    assert SMTP_PASSWORD not in mail_set + shown
    invoke("job", "create", str(spec_file))
    assert job_automations(name) == 1
    invoke("job", "edit", name, str(spec_file))
    assert job_automations(name) == 1  # replaced, not doubled

    result = runner.invoke(app, ["job", "start", name, "--wait", "--timeout", "240"])
    assert result.exit_code == 1 and ": Failed" in result.output, result.output
    run_id = result.output.split("/runs/flow-run/")[1].split()[0]

    posted = received.get(timeout=60)  # the server's triggers and actions services send it
    text = json.dumps(posted)
    assert posted["subject"] == f"bingobackup: job {name} run Failed", posted
    assert f"Job {name}: run {name} " in posted["text"] and f"({run_id}) ended Failed" in posted["text"]
    assert "1 of 2 VM(s) failed" in posted["text"] and "centos6-legacy" in posted["text"]  # why
    assert f"/runs/flow-run/{run_id}" in posted["text"]  # a link to the run in the Prefect UI
    secrets = {"Access Key": ACCESS_KEY, "Secret Key": SECRET_KEY, "pool passphrase": POOL_PASSPHRASE}
    assert not leaks("the webhook's body", text, secrets)  # as typed, hex, base64, quoted

    mail = mails.get(timeout=60)  # sent by the server after its login with the stored password
    assert mail["Subject"] == f"bingobackup: job {name} run Failed" and mail["To"] == "ops@example.com"
    body = mail.get_content()
    assert f"Job {name}: run " in body and f"({run_id}) ended Failed" in body, body
    assert "1 of 2 VM(s) failed" in body and "centos6-legacy" in body, body
    assert not leaks("the mail", mail.as_string(), {**secrets, "SMTP password": SMTP_PASSWORD})

    deployment_id = read_job(name).deployment_id
    invoke("job", "delete", name, "--yes")
    with get_client(sync_client=True) as client:
        assert client.read_resource_related_automations(f"prefect.deployment.{deployment_id}") == []


def test_notify_set_refuses_a_url_with_a_password_or_without_http_and_bad_mail_settings(
    prefect_server: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "user name or password" in refused(
        "notify", "set", "--webhook", "https://ops:pw@hooks.example.com/x"
    )
    assert "not an http(s) URL" in refused("notify", "set", "--webhook", "hooks.example.com/x")
    assert "needs --smtp-host" in refused("notify", "set", "--email", "ops@example.com")
    assert "not an e-mail address" in refused("notify", "set", "--email", "ops", "--smtp-host", "mail")
    monkeypatch.setenv("BINGOBACKUP_SMTP_PASSWORD", SMTP_PASSWORD)
    error = refused(
        "notify", "set", "--email", "ops@example.com", "--smtp-host", "mail.example.com",
        "--smtp-security", "plain", "--smtp-user", SMTP_USER,
    )  # fmt: skip
    assert "unencrypted" in error and SMTP_PASSWORD not in error
    assert "No notifications" in invoke("notify", "show")
