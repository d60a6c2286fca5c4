"""Slack side of opsbot: the persisted outbox and the Block Kit for alerts."""
