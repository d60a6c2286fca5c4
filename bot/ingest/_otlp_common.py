"""What the OTLP decoders share: the payload-level error and small field rules."""

from __future__ import annotations

from bot.spans import RejectReason

__all__ = ["UNKNOWN_SERVICE", "OtlpDecodeError", "is_utf8"]

# What OpenTelemetry SDKs report when the application sets no service.name.
UNKNOWN_SERVICE = "unknown_service"


class OtlpDecodeError(ValueError):
    """The whole payload cannot be decoded; nothing in it was ingested.

    The receiver answers 400 with this message, and exporters do not retry a 400,
    so the message says what the sender has to fix.
    """

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
