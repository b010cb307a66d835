"""Typed errors of the BingoCloud API.

Every failure the client reports is a `CloudError`; the subclass says what the caller can
do about it (fix credentials, fix the request, wait and retry, check the network). Messages
never contain request parameters: they carry the signature and the access key id.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from typing import Any

from bingobackup.cloud._xml import parse
from bingobackup.cloud.signing import DEFAULT_TIMEZONE
from bingobackup.errors import BingoBackupError

AUTH_CODES = frozenset({"AuthFailure", "SignatureDoesNotMatch", "RequestExpired"})
INVALID_REQUEST_CODES = frozenset(
    {
        "MissingParameter",
        "InvalidParameterValue",
        "InvalidAction",
        "IncorrectState",
        "VolumeInUse",
        "InsufficientStorageCapacity",
    }
)
RETRYABLE_CODES = frozenset({"RequestLimitExceeded", "InternalError", "Unavailable"})
# Statuses a proxy or load balancer answers for a busy or restarting API: Request Timeout and
# Too Many Requests below 500 (5xx is retried whatever the body).
RETRYABLE_STATUSES = frozenset({408, 429})
MALFORMED = "MalformedResponse"

_BODY_EXCERPT = 200


def _rebuild(cls: type[CloudError], state: dict[str, Any]) -> CloudError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, str(error))
    return error


class CloudError(BingoBackupError):
    """A BingoCloud request failed. `code` is BingoCloud's error code when it sent one."""

    hint = ""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        request_id: str = "",
        http_status: int | None = None,
        action: str = "",
    ) -> None:
        self.message = message
        self.code = code
        self.request_id = request_id
        self.http_status = http_status
        self.action = action
        self.attempts = 1
        self.elapsed_seconds = 0.0
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"BingoCloud {self.action}" if self.action else "BingoCloud"
        text = f"{where} failed: {self.code}: {self.message}" if self.code else f"{where}: {self.message}"
        details = []
        if self.http_status is not None:
            details.append(f"HTTP {self.http_status}")
        if self.request_id:
            details.append(f"request id {self.request_id}")
        if details:
            text += f" ({', '.join(details)})"
        if self.attempts > 1:
            text += f"; gave up after {self.attempts} attempts over {self.elapsed_seconds:.1f} s"
        if self.hint:
            text += f". {self.hint}"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only __init__ would break the default exception pickling (Prefect pickles
        # task failures across processes).
        return (_rebuild, (type(self), dict(self.__dict__)))

    def of_action(self, action: str) -> CloudError:
        """The same error naming `action` (the parsers raise without knowing which call it was)."""
        return self if self.action else _rebuild(type(self), {**self.__dict__, "action": action})

    def after_retries(self, attempts: int, elapsed_seconds: float) -> CloudError:
        """The same error, saying how long the client kept trying before giving up."""
        state = dict(self.__dict__)
        state.update(attempts=attempts, elapsed_seconds=elapsed_seconds)
        return _rebuild(type(self), state)


class CloudAuthError(CloudError):
    hint = "Check the Access Key and Secret Key (and the cluster clock) with `bingobackup cloud settings`"


class CloudClockError(CloudAuthError):
    """The cloud refused the request's `Timestamp`: this host's clock is off, or the registered
    cloud's timezone is not the one its clock runs in (the stamp is wall time in that zone)."""

    def __init__(self, message: str, *, timezone: str, timestamp: str, **kwargs: Any) -> None:
        self.timezone = timezone
        self.timestamp = timestamp
        self.hint = (
            f"The request was stamped {timestamp or '(unknown)'}: this host's clock as wall time in "
            f"{timezone}, the timezone setting of the registered cloud. If the cloud's clock runs in "
            "another zone, change the setting with `bingobackup cloud settings CLOUD --timezone ZONE` "
            "(an IANA name such as Asia/Shanghai or UTC); if the zone is right, correct this host's "
            "clock (NTP)"
        )
        super().__init__(message, **kwargs)


class CloudNotFoundError(CloudError):
    pass


class CloudInvalidRequest(CloudError):
    pass


class CloudResponseError(CloudError):
    """An answer that is not BingoCloud's API speaking: unreadable or cut XML, an HTML page of a
    proxy or web console, a redirect. Not retried: a cloud that answered 200 may have done the
    action, and a wrong address stays wrong."""

    hint = (
        "Check that the registered address is BingoCloud's API endpoint and not a proxy, login "
        "page or web console (`bingobackup cloud settings`); if it is, try again and give the "
        "cloud's administrator the action and time"
    )

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("code", MALFORMED)
        super().__init__(message, **kwargs)


class CloudRetryableError(CloudError):
    hint = "BingoCloud is busy or failing; try again later"


class CloudUnreachableError(CloudError):
    """No HTTP response: refused, dropped, timed out or TLS failure.

    `transient` is False for failures a retry cannot fix (a certificate that does not
    verify), so the client raises those at once instead of retrying for the whole window.
    """

    hint = "Check the address, port and SSL setting of the registered cloud (`bingobackup cloud settings`)"

    def __init__(self, endpoint: str, reason: str, *, action: str = "", transient: bool = True) -> None:
        self.endpoint = endpoint
        self.transient = transient
        super().__init__(f"cannot reach {endpoint}: {reason}", action=action)


class CloudWaitTimeout(CloudError):
    def __init__(
        self, resource: str, resource_id: str, wanted: str, last_seen: str, waited_seconds: float
    ) -> None:
        self.resource_id = resource_id
        self.wanted_state = wanted
        self.last_state = last_seen
        self.waited_seconds = waited_seconds
        super().__init__(
            f"timed out after {waited_seconds:.1f} s waiting for {resource} {resource_id} to become "
            f"{wanted!r}; last state seen: {last_seen!r}. Raise the timeout, or check the {resource} "
            "in the BingoCloud console"
        )


def _find(root: ET.Element, name: str) -> ET.Element | None:
    # Case-insensitive: EC2 writes `RequestID` in errors but `requestId` in successes.
    wanted = name.lower()
    for element in root.iter():
        if element.tag.lower() == wanted:
            return element
    return None


def _find_text(root: ET.Element, name: str) -> str:
    found = _find(root, name)
    return "" if found is None else (found.text or "").strip()


def _refuses_timestamp(code: str, message: str) -> bool:
    # EC2 says RequestExpired; a cloud that words it otherwise still names the Timestamp.
    return code == "RequestExpired" or (bool(code) and "timestamp" in message.lower())


def _error_class(status: int, code: str) -> type[CloudError]:
    if code in AUTH_CODES:
        return CloudAuthError
    if code.endswith(".NotFound") or code == "InvalidInstanceType":
        return CloudNotFoundError
    if code in RETRYABLE_CODES or status >= 500 or status in RETRYABLE_STATUSES:
        return CloudRetryableError
    if code in INVALID_REQUEST_CODES or code.startswith(("Invalid", "Missing")):
        return CloudInvalidRequest
    if not code:  # no error document of the API: something else answered
        return CloudResponseError
    return CloudError


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(rb"<[^>]*>?")


def _plain(html_text: bytes) -> str:
    return " ".join(html.unescape(html_text.decode("utf-8", "replace")).split())[:_BODY_EXCERPT]


def _is_html(raw: bytes, content_type: str) -> bool:
    head = raw.lstrip()[:64].lower()
    return "html" in content_type.lower() or head.startswith((b"<!doctype html", b"<html"))


def describe_answer(raw: bytes, content_type: str = "", location: str = "") -> str:
    """What came back, in a line: an HTML page by its title, a redirect by its target, else
    an excerpt of the body (never all of it: a page can be megabytes)."""
    if location:
        return f"a redirect to {location[:_BODY_EXCERPT]}; if that is the API's address, register it"
    if _is_html(raw, content_type):
        match = _TITLE.search(raw)
        if match:
            page = f"an HTML page titled {_plain(match.group(1))!r}"
        else:
            words = _plain(_TAG.sub(b" ", raw))
            page = f"an HTML page saying {words!r}" if words else "an empty HTML page"
        return f"{page}, from a proxy, load balancer or web server in front of BingoCloud's API"
    excerpt = " ".join(raw.decode("utf-8", "replace").split())[:_BODY_EXCERPT]
    kind = f" ({content_type})" if content_type else ""
    return f"unexpected response{kind}: {excerpt}" if excerpt else f"empty response{kind}"


def unreadable_answer(
    status: int, raw: bytes, action: str, problem: str, *, content_type: str = "", location: str = ""
) -> CloudResponseError:
    """A success status whose body is not the API's answer to `action` (`problem` says how)."""
    return CloudResponseError(
        f"{problem}: {describe_answer(raw, content_type, location)}", http_status=status, action=action
    )


def error_from_response(
    status: int,
    body: bytes | str,
    action: str,
    *,
    timestamp: str = "",
    timezone: str = DEFAULT_TIMEZONE,
    content_type: str = "",
    location: str = "",
) -> CloudError:
    """The typed error for a non-success response `Response/Errors/Error{Code, ErrorNo?, Message}`.

    `timestamp` and `timezone` are what the request was stamped with, named by a
    `CloudClockError` when the cloud refuses the time. A body that is no such document (a
    proxy's HTML page, a redirect) is described by what it is, from `content_type` and
    `location`.
    """
    raw = body.encode("utf-8") if isinstance(body, str) else body
    code = message = request_id = ""
    try:
        root: ET.Element | None = parse(raw)
    except ET.ParseError:
        root = None
    error = None if root is None else _find(root, "Error")
    if error is not None:  # only an error document's Code counts, not an element so named elsewhere
        code = _find_text(error, "Code")
        message = _find_text(error, "Message")
    if root is not None:
        request_id = _find_text(root, "RequestID")
    if not message or (not code and (location or _is_html(raw, content_type))):
        message = describe_answer(raw, content_type, location)
    if _refuses_timestamp(code, message):
        return CloudClockError(
            message,
            timezone=timezone,
            timestamp=timestamp,
            code=code,
            request_id=request_id,
            http_status=status,
            action=action,
        )
    return _error_class(status, code)(
        message, code=code, request_id=request_id, http_status=status, action=action
    )
