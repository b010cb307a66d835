"""Fault injection, switchable at run time through `PUT /_sim/faults`.

Each request draws once from a (seedable) random generator: dropped connection, throttled,
internal error, or lost reply, in that order of precedence, after the added latency.
A dropped connection closes before the request is processed (nothing happened); a lost
reply closes it after the request was processed (it happened, the client does not know):
the case that makes a create call's retry make a second resource unless it is idempotent.
"""

from __future__ import annotations

import random
import threading
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Fault = Literal["drop", "throttle", "error", "lose_reply"]


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
        ]
        threshold = 0.0
        for fault, rate in chances:
            threshold += rate
            if draw < threshold:
                return latency, fault
        return latency, None


def _rate_for(rates: dict[str, float], action: str) -> float:
    return rates.get(action, rates.get("*", 0.0))
