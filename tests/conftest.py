"""Shared fixtures: where the real public data lives, and the Slack Web API stand-in."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.slack_standin import SlackStandIn

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("OPSBOT_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data; skips the test with a clear message when absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (set OPSBOT_SHARED_DATA)")
    return path


@pytest.fixture
def shared_data() -> Path:
    return shared_path()


@pytest.fixture(scope="module")
def running() -> Iterator[SlackStandIn]:
    """One Slack stand-in server per test module (starting one per test is slow)."""
    with SlackStandIn() as started:
        yield started


@pytest.fixture
def standin(running: SlackStandIn) -> SlackStandIn:
    """The module's stand-in with its recorded calls and scripts cleared."""
    running.reset()
    return running
