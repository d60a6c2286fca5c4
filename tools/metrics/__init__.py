"""Service metrics for the agent: PromQL templates, a Prometheus client, and the stand-in."""
