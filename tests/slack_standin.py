"""The Slack Web API stand-in for tests; it lives in `bench/` so `opsbot bench alert` can run it
from an installed package (tests/ is not installed)."""

from bench.slack_standin import Call, Reply, SlackStandIn, rate_limited, server_error, slack_error

__all__ = ["Call", "Reply", "SlackStandIn", "rate_limited", "server_error", "slack_error"]
