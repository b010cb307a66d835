"""Fault injection, switchable at run time through `PUT /_sim/faults`.

Each request draws once from a (seedable) random generator: dropped connection, throttled,
or internal error, in that order of precedence, after the added latency.
"""

from __future__ import annotations

import random
import threading
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Fault = Literal["drop", "throttle", "error"]


class FaultConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(0, ge=0, le=60_000)
    error_rate: dict[str, float] = Field(default_factory=dict, description='per action, or "*" for all')
    throttle_rate: float = Field(0.0, ge=0, le=1)
    drop_rate: float = Field(0.0, ge=0, le=1)
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
        for action, rate in config.error_rate.items():
            if not 0 <= rate <= 1:
                raise ValueError(f"error_rate for {action!r} must be between 0 and 1, not {rate}")
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
            error_rate = config.error_rate.get(action, config.error_rate.get("*", 0.0))
        latency = config.latency_ms / 1000
        if draw < config.drop_rate:
            return latency, "drop"
        if draw < config.drop_rate + config.throttle_rate:
            return latency, "throttle"
        if draw < config.drop_rate + config.throttle_rate + error_rate:
            return latency, "error"
        return latency, None
