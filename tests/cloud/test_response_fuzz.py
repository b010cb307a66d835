"""What comes back over HTTP may not be BingoCloud's API speaking: the simulator's fault switch
(`PUT /_sim/faults`, `reply`) serves generated malformed or cut XML, wrong content types, the
HTML error pages of a proxy or load balancer, redirects and trickling bodies to the real
client. Whatever it serves, the client returns what the API answered or raises one of its
typed errors (`CloudError`), naming the action and saying what to do; it retries (counted by
the simulator, request by request) exactly the answers worth retrying, and a slow body ends
at the client's timeout. `FUZZ_EXAMPLES=N` runs N random examples instead of the suite's
derandomized ones.
"""

from __future__ import annotations

import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.cloud_fuzz import ODD_TEXT, RESPONSES, mutate
from support.cloud_stub import ok
from support.sim_admin import injected_faults
from support.testkeys import ACCESS_KEY, SECRET_KEY

from bingobackup.cloud import (
    BingoCloudClient,
    CloudError,
    CloudResponseError,
    CloudRetryableError,
    CloudUnreachableError,
)
from bingobackup.cloud import client as client_module
from bingobackup.cloud.errors import RETRYABLE_STATUSES
from bingobackup.sim.faults import ReplyFault
from bingobackup.sim.server import RunningSimulator

MIB = 1 << 20
# Backoff from 0.02 s (0.2 s in production) in a 0.3 s window: every retryable answer is tried
# again, even on a loaded machine, yet an example takes a third of a second at most.
BACKOFF_BASE = 0.02
RETRY_WINDOW = 0.3
TIMEOUT = 2.0


def _ids(models: list[Any]) -> list[str]:
    return sorted(str(next(iter(m.model_dump().values()))) for m in models)


# Each call the fuzz drives: (its action, how to make it, what of its answer must match).
CALLS: dict[str, tuple[str, Callable[[BingoCloudClient, str], Any], Callable[[Any], Any]]] = {
    "describe_clusters": ("DescribeClusters", lambda c, _: list(c.describe_clusters()), _ids),
    "describe_instances": ("DescribeInstances", lambda c, _: list(c.describe_instances()), _ids),
    "describe_images": ("DescribeImages", lambda c, _: list(c.describe_images()), _ids),
    "describe_storages": ("DescribeStorages", lambda c, _: list(c.describe_storages()), _ids),
    "create_volume": (
        "CreateVolume",
        lambda c, storage: c.create_volume(size_bytes=MIB, storage_id=storage, name="fuzzed"),
        lambda volume: (volume.name, volume.size_bytes),
    ),
}
PROXY_STATUSES = [301, 302, 400, 401, 403, 404, 408, 429, 500, 502, 503, 504]
CONTENT_TYPES = st.sampled_from(
    ["text/html; charset=utf-8", "application/json", "text/plain", "application/octet-stream", "", "text/xml"]
)


@st.composite
def substitute_bodies(draw: st.DrawFn, action: str) -> str:
    """Bodies a broken cloud or a proxy sends instead of the answer to `action`."""
    kind = draw(st.sampled_from(["mutated", "foreign root", "text", "json", "declaration", "empty"]))
    if kind == "mutated":
        inner = next((inner for act, inner in RESPONSES.values() if act == action), "<return>true</return>")
        root = ET.fromstring(ok(action, inner)[1])
        mutate(root, draw)
        return ET.tostring(root, encoding="unicode")
    if kind == "foreign root":  # well-formed XHTML: a login or maintenance page
        return (
            f"<html><head><title>{draw(ODD_TEXT)}</title></head><body><p>{draw(ODD_TEXT)}</p></body></html>"
        )
    if kind == "text":
        return draw(st.text(max_size=3000))
    if kind == "json":
        return f'{{"error": {{"code": 500, "message": "{draw(ODD_TEXT)}"}}}}'
    if kind == "declaration":
        encoding = draw(st.sampled_from(["utf-16", "gbk", "no-such-encoding", "ascii"]))
        return f'<?xml version="1.0" encoding="{encoding}"?><{action}Response><return>true</return></{action}Response>'
    return ""


@st.composite
def reply_faults(draw: st.DrawFn, action: str) -> ReplyFault:
    kind = draw(st.sampled_from(["content type", "cut", "substitute", "proxy page"]))
    if kind == "content type":  # the real answer, labelled as something else
        return ReplyFault(content_type=draw(CONTENT_TYPES))
    if kind == "cut":  # the real answer, cut short (every answer is longer than 100 bytes)
        return ReplyFault(
            status=draw(st.sampled_from([None, 200, 500, 503])),
            cut_at=draw(st.integers(-100, 99)),
            cut_closes=draw(st.booleans()),
        )
    if kind == "substitute":
        return ReplyFault(
            status=draw(st.sampled_from([200, 200, 200, 400, 404, 500, 502])),
            content_type=draw(st.none() | CONTENT_TYPES),
            body=draw(substitute_bodies(action)),
            cut_at=draw(st.none() | st.integers(-50, 3000)),
            cut_closes=draw(st.booleans()),
        )
    status = draw(st.sampled_from(PROXY_STATUSES))
    return ReplyFault(
        status=status,
        proxy_page=True,
        location="https://cloud.example.com/api/" if status in (301, 302) else None,
    )


def _expected(fault: ReplyFault, action: str) -> str:
    """What the client must do: "answer" (as without the fault), "retry" or "once" (raise on the
    first reply). Derived from the fault, not from what the client did."""
    status = fault.status or (502 if fault.proxy_page else 200)
    if status >= 500 or status in RETRYABLE_STATUSES:
        return "retry"
    if fault.body is not None:
        full = len(fault.body.encode())
        kept = len(fault.body.encode()[: fault.cut_at]) if fault.cut_at is not None else full
        if fault.cut_closes and kept < full:
            return "retry"
        # A mutated answer may still be a valid one (an empty set, say); nothing else is.
        return "answer or once" if status == 200 and f"{action}Response" in fault.body else "once"
    if fault.cut_at is not None:
        return "retry" if fault.cut_closes else "once"
    return "answer" if status == 200 and not fault.proxy_page else "once"


def _first_storage(client: BingoCloudClient) -> str:
    return next(iter(client.describe_storages())).storage_id


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "45")),
    derandomize=not os.environ.get("FUZZ_EXAMPLES"),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_spoiled_replies_give_the_answer_or_a_typed_error_retried_only_when_worth_it(
    sim: RunningSimulator, monkeypatch: pytest.MonkeyPatch, data: st.DataObject
) -> None:
    monkeypatch.setattr(client_module, "BACKOFF_BASE_SECONDS", BACKOFF_BASE)
    client = BingoCloudClient(
        sim.endpoint, ACCESS_KEY, SECRET_KEY, timeout_seconds=TIMEOUT, retry_window_seconds=RETRY_WINDOW
    )
    storage = _first_storage(client)
    method = data.draw(st.sampled_from(sorted(CALLS)), label="call")
    action, call, projection = CALLS[method]
    fault = data.draw(reply_faults(action), label="fault")
    expected = _expected(fault, action)
    before = sim.stats()
    with injected_faults(sim, {"reply": fault.model_dump(), "actions": [action]}):
        try:
            outcome: Any = call(client, storage)
        except CloudError as error:  # anything else fails the test: hypothesis shows it
            outcome = error
    after = sim.stats()
    requests = after.requests.get(action, 0) - before.requests.get(action, 0)
    spoiled = after.spoiled_replies.get(action, 0) - before.spoiled_replies.get(action, 0)
    assert requests >= 1 and spoiled == requests  # the fault met every request of the call

    if expected == "answer":
        assert not isinstance(outcome, CloudError), outcome
        assert projection(outcome) == projection(call(client, storage))  # what the API answered
        return
    if expected == "answer or once" and not isinstance(outcome, CloudError):
        return
    assert isinstance(outcome, CloudError), f"a spoiled reply was taken for an answer: {outcome!r}"
    message = str(outcome)
    assert outcome.action == action and f"BingoCloud {action}" in message, message
    assert outcome.hint and message.endswith(outcome.hint), message  # says what to do
    assert len(message) < 1000 and "Traceback" not in message and SECRET_KEY not in message, message
    if expected == "retry":
        assert isinstance(outcome, (CloudRetryableError, CloudUnreachableError)), message
        assert outcome.attempts >= 2 and requests == outcome.attempts, (outcome.attempts, requests)
    else:
        assert not isinstance(outcome, (CloudRetryableError, CloudUnreachableError)), message
        assert isinstance(outcome, CloudResponseError), message  # not the API's own refusal
        # One request, or two when the first page's nextToken asked for the next (not a retry).
        pages = 2 if "nexttoken" in (fault.body or "").lower() else 1
        assert outcome.attempts == 1 and 1 <= requests <= pages, (outcome.attempts, requests)


def test_proxy_pages_and_redirects_are_named_for_what_they_are(sim: RunningSimulator) -> None:
    client = BingoCloudClient(sim.endpoint, ACCESS_KEY, SECRET_KEY, retry_window_seconds=0)
    pages = {
        "503": {"status": 503, "proxy_page": True},
        "301": {"status": 301, "proxy_page": True, "location": "https://cloud.example.com:8443/"},
        "portal": {
            "body": "<html><head><title>Sign in</title></head><body/></html>",
            "content_type": "text/html",
        },
    }
    said = {}
    for name, reply in pages.items():
        with injected_faults(sim, {"reply": reply}):
            try:
                list(client.describe_instances())
            except CloudError as error:
                said[name] = str(error)
    assert "an HTML page titled '503 Service Unavailable'" in said["503"], said["503"]
    assert "proxy, load balancer or web server" in said["503"] and "try again later" in said["503"]
    assert "a redirect to https://cloud.example.com:8443/" in said["301"], said["301"]
    # A well-formed login page answered with 200 used to read as "no VMs at all".
    assert "<html> instead of <DescribeInstancesResponse>" in said["portal"], said["portal"]
    assert "titled 'Sign in'" in said["portal"] and "bingobackup cloud settings" in said["portal"]


def test_a_trickling_body_ends_at_the_clients_timeout_and_a_slow_but_steady_one_arrives(
    sim: RunningSimulator,
) -> None:
    # ~4 KiB of DescribeInstances at 40 bytes/s would take 100 s; each read comes well inside
    # a per-read timeout, so only a deadline on the whole answer stops it.
    # A window longer than one timeout and the first backoff (0.2 s): at least two attempts.
    client = BingoCloudClient(
        sim.endpoint, ACCESS_KEY, SECRET_KEY, timeout_seconds=0.5, retry_window_seconds=1.5
    )
    before = sim.stats().requests.get("DescribeInstances", 0)
    started = time.monotonic()
    with injected_faults(sim, {"reply": {"trickle_bytes_per_second": 40}, "actions": ["DescribeInstances"]}):
        try:
            list(client.describe_instances())
        except CloudUnreachableError as error:
            stalled = error
        else:
            raise AssertionError("a body trickled over 100 s was read within a 0.5 s timeout")
    took = time.monotonic() - started
    requests = sim.stats().requests.get("DescribeInstances", 0) - before

    assert "did not arrive whole within 0.5 s" in str(stalled) and "DescribeInstances" in str(stalled)
    assert stalled.attempts >= 2 and requests == stalled.attempts  # a timeout is retried
    # The last attempt starts inside the window and ends at its timeout (slack for a busy host).
    assert took < 1.5 + 0.5 + 1.5, took
    instances = [i.instance_id for i in client.describe_instances()]
    with injected_faults(sim, {"reply": {"trickle_bytes_per_second": 200_000}}):
        assert [i.instance_id for i in client.describe_instances()] == instances
