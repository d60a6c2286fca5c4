"""The stand-in's workspace (channels, users, messages, methods); see bench/slack_standin.py."""

from bench.slack_standin_workspace import BOT_ID, BOT_USER, TEAM_ID, SlackError, StandInWorkspace

__all__ = ["BOT_ID", "BOT_USER", "TEAM_ID", "SlackError", "StandInWorkspace"]
