"""Fault injection, switchable at run time through `PUT /_sim/faults`.

Each request draws once from a (seedable) random generator: dropped connection, throttled,
internal error, lost reply, or spoiled reply, in that order of precedence, after the added
latency. A dropped connection closes before the request is processed (nothing happened); a
lost reply closes it after the request was processed (it happened, the client does not
know): the case that makes a create call's retry make a second resource unless it is
idempotent. A spoiled reply (`ReplyFault`) is what a proxy, a load balancer or a broken
cloud sends back: another status or content type, a substituted body (malformed XML, an
HTML error page), the body cut short, or trickled out slowly.
"""

from __future__ import annotations

import random
import threading
from http import HTTPStatus
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Fault = Literal["drop", "throttle", "error", "lose_reply", "spoil_reply"]


class ReplyFault(BaseModel):
    """How a reply is spoiled. With `body` or `proxy_page` the request never reaches the API
    (a proxy answered, nothing happened); otherwise the real reply is made and then spoiled."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(1.0, ge=0, le=1, description="share of the (selected) requests spoiled")
    status: int | None = Field(None, ge=100, le=599, description="HTTP status sent instead of the real one")
    content_type: str | None = Field(
        None, max_length=200, pattern=r"^[^\r\n]*$", description="Content-Type instead of text/xml"
    )
    body: str | None = Field(None, description="sent (UTF-8) instead of the reply: generated bad XML, …")
    proxy_page: bool = Field(
        False, description="an nginx-style HTML error page for `status` (default 502) instead of the reply"
    )
    location: str | None = Field(
        None, max_length=2000, pattern=r"^[^\r\n]*$", description="a Location header (with a 3xx status)"
    )
    cut_at: int | None = Field(
        None, description="the body cut after this many bytes (negative: this many dropped from its end)"
    )
    cut_closes: bool = Field(
        False,
        description="Content-Length announces the whole body and the connection closes at the cut "
        "(otherwise Content-Length is the cut body's: a proxy that buffered a cut reply)",
    )
    trickle_bytes_per_second: float | None = Field(
        None, gt=0, le=1 << 20, description="the body sent this slowly (a stalled proxy or link)"
    )

    def substitutes(self) -> bool:
        return self.body is not None or self.proxy_page

    def spoiled(self, status: int, body: bytes) -> tuple[int, str | None, bytes, int]:
        """(status, Content-Type or None for the real one, bytes sent, Content-Length announced)
        for a real reply of `status` and `body` (ignored when this fault substitutes its own)."""
        if self.proxy_page:
            status = self.status or HTTPStatus.BAD_GATEWAY
            body = proxy_error_page(status)
        elif self.body is not None:
            status = self.status or HTTPStatus.OK
            body = self.body.encode("utf-8", "surrogatepass")
        else:
            status = self.status or status
        content_type = self.content_type or ("text/html" if self.proxy_page else None)
        sent = body if self.cut_at is None else body[: self.cut_at]
        return status, content_type, sent, len(body) if self.cut_closes else len(sent)


def proxy_error_page(status: int) -> bytes:
    """The page nginx sends for an upstream it cannot reach or that timed out."""
    try:
        title = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        title = str(status)
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1>"
        "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ).encode()


class FaultConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(0, ge=0, le=60_000)
    error_rate: dict[str, float] = Field(default_factory=dict, description='per action, or "*" for all')
    throttle_rate: float = Field(0.0, ge=0, le=1)
    drop_rate: float = Field(0.0, ge=0, le=1)
    lost_reply_rate: dict[str, float] = Field(
        default_factory=dict,
        description='per action, or "*" for all: processed, then the connection closes with no reply',
    )
    reply: ReplyFault | None = Field(None, description="replies spoiled on their way back (rate inside)")
    actions: list[str] | None = Field(None, description="only these actions are affected (None: all)")
    seed: int | None = None


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._config = FaultConfig()
        self._random = random.Random()

    @property
    def config(self) -> FaultConfig:
        with self._lock:
            return self._config

    def configure(self, config: FaultConfig) -> None:
        for field in ("error_rate", "lost_reply_rate"):
            for action, rate in getattr(config, field).items():
                if not 0 <= rate <= 1:
                    raise ValueError(f"{field} for {action!r} must be between 0 and 1, not {rate}")
        with self._lock:
            self._config = config
            self._random = random.Random(config.seed)

    def clear(self) -> None:
        self.configure(FaultConfig())

    def decide(self, action: str) -> tuple[float, Fault | None]:
        """(seconds of added latency, the fault to inject or None) for one request."""
        with self._lock:
            config = self._config
            if config.actions is not None and action not in config.actions:
                return 0.0, None
            draw = self._random.random()
        latency = config.latency_ms / 1000
        chances: list[tuple[Fault, float]] = [
            ("drop", config.drop_rate),
            ("throttle", config.throttle_rate),
            ("error", _rate_for(config.error_rate, action)),
            ("lose_reply", _rate_for(config.lost_reply_rate, action)),
            ("spoil_reply", config.reply.rate if config.reply is not None else 0.0),
        ]
        threshold = 0.0
        for fault, rate in chances:
            threshold += rate
            if draw < threshold:
                return latency, fault
        return latency, None


def _rate_for(rates: dict[str, float], action: str) -> float:
    return rates.get(action, rates.get("*", 0.0))
