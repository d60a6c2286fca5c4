"""The workspace behind the Slack stand-in: channels, users, messages and what each method does.

Handlers take the request's parameters and return the fields of an `ok: true` answer, or
raise SlackError(code) for Slack's `ok: false` one. Not thread-safe: SlackStandIn locks.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BOT_ID", "BOT_USER", "TEAM_ID", "SlackError", "StandInWorkspace"]

TEAM_ID, BOT_USER, BOT_ID = "T0STANDIN", "U0OPSBOT", "B0OPSBOT"


class SlackError(Exception):
    """Raised by a method handler: becomes `{"ok": false, "error": code}`."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _shown(message: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    """Message metadata is returned only when asked for, as Slack does."""
    with_meta = str(p.get("include_all_metadata", "")).lower() in ("1", "true")
    return {k: v for k, v in message.items() if with_meta or k != "metadata"}


class StandInWorkspace:
    """One channel (#opsbot-alerts, C0ALERTS) and two users (the bot, U123 alice) to start."""

    def __init__(self, upload_base: str) -> None:
        self.upload_base = upload_base  # upload URLs are this plus the file id
        self._seq = 0
        self.channels: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.uploads: dict[str, bytes | None] = {}
        self.usergroups: dict[str, list[str]] = {}  # id -> member user ids
        self.add_channel("opsbot-alerts", "C0ALERTS")
        self.add_user(BOT_USER, "opsbot", is_bot=True)
        self.add_user("U123", "alice")

    def add_channel(self, name: str, channel_id: str, member: bool = True) -> str:
        self.channels[channel_id] = {
            "id": channel_id, "name": name, "is_channel": True, "is_private": False,
            "is_member": member, "is_archived": False, "created": 1690000000,
        }
        self.messages[channel_id] = []
        return channel_id

    def add_user(self, user_id: str, name: str, is_bot: bool = False) -> None:
        self.users[user_id] = {
            "id": user_id, "team_id": TEAM_ID, "name": name, "real_name": name.title(),
            "is_bot": is_bot, "tz": "Europe/Berlin", "profile": {"display_name": name},
        }

    def handle(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            raise SlackError("unknown_method")
        result: dict[str, Any] = handler(params)
        return result

    def _next_ts(self) -> str:
        self._seq += 1
        micros = 1_700_000_000_000_000 + self._seq * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _channel(self, ref: Any, by_name: bool = True) -> dict[str, Any]:
        ref = str(ref or "")
        for ch in self.channels.values():
            if ref == ch["id"] or (by_name and ref.lstrip("#") == ch["name"]):
                return ch
        raise SlackError("channel_not_found")

    def _message(self, channel_id: str, ts: Any) -> dict[str, Any]:
        for msg in self.messages[channel_id]:
            if msg["ts"] == ts:
                return msg
        raise SlackError("message_not_found")

    def _m_auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"url": "https://standin.slack.com/", "team": "Stand-in", "user": "opsbot",
                "team_id": TEAM_ID, "user_id": BOT_USER, "bot_id": BOT_ID,
                "is_enterprise_install": False}

    def _m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(p.get("channel"))
        if not ch["is_member"]:
            raise SlackError("not_in_channel")
        if not any(p.get(k) for k in ("text", "blocks", "attachments", "files")):
            raise SlackError("no_text")
        msg = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "team": TEAM_ID,
               "ts": self._next_ts(), "text": p.get("text", "")}
        for key in ("blocks", "attachments", "metadata", "thread_ts", "files"):
            if p.get(key):
                msg[key] = p[key]
        self.messages[ch["id"]].append(msg)
        return {"channel": ch["id"], "ts": msg["ts"], "message": msg}

    def _m_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(p.get("channel"), by_name=False)
        msg = self._message(ch["id"], p.get("ts"))
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in p:
                msg[key] = p[key]
        msg["edited"] = {"user": BOT_USER, "ts": self._next_ts()}
        return {"channel": ch["id"], "ts": msg["ts"], "text": msg["text"], "message": msg}

    def _m_chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(p.get("channel"))
        if p.get("user") not in self.users:
            raise SlackError("user_not_in_channel")
        if not ch["is_member"]:
            raise SlackError("not_in_channel")
        return {"message_ts": self._next_ts()}

    def _m_reactions_add(self, p: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(p.get("channel"), by_name=False)
        msg = self._message(ch["id"], p.get("timestamp"))
        reactions = msg.setdefault("reactions", [])
        if any(r["name"] == p.get("name") for r in reactions):
            raise SlackError("already_reacted")
        reactions.append({"name": p.get("name"), "users": [BOT_USER], "count": 1})
        return {}

    def _m_users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("user") not in self.users:
            raise SlackError("user_not_found")
        return {"user": self.users[p["user"]]}

    def _m_conversations_info(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"channel": self._channel(p.get("channel"), by_name=False)}

    def _m_users_conversations(self, p: dict[str, Any]) -> dict[str, Any]:
        mine = [ch for ch in self.channels.values() if ch["is_member"]]
        return {"channels": mine, "response_metadata": {"next_cursor": ""}}

    def _m_conversations_history(self, p: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(p.get("channel"), by_name=False)
        if not ch["is_member"]:
            raise SlackError("not_in_channel")
        oldest, latest = float(p.get("oldest") or 0), float(p.get("latest") or 1e12)
        found = [
            _shown(m, p) for m in reversed(self.messages[ch["id"]])
            if oldest <= float(m["ts"]) <= latest and m.get("thread_ts", m["ts"]) == m["ts"]
        ]
        limit = int(p.get("limit") or 100)
        return {"messages": found[:limit], "has_more": len(found) > limit}

    def _m_conversations_replies(self, p: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(p.get("channel"), by_name=False)
        parent = self._message(ch["id"], p.get("ts"))
        thread = [parent] + [m for m in self.messages[ch["id"]]
                             if m.get("thread_ts") == parent["ts"] != m["ts"]]
        oldest = float(p.get("oldest") or 0)
        found = [_shown(m, p) for m in thread if m is parent or float(m["ts"]) >= oldest]
        return {"messages": found, "has_more": False}

    def _m_usergroups_users_list(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("usergroup") not in self.usergroups:
            raise SlackError("no_such_subteam")
        return {"users": list(self.usergroups[p["usergroup"]])}

    def _m_files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("filename") or not p.get("length"):
            raise SlackError("invalid_arguments")
        file_id = f"F{len(self.uploads) + 1:08d}"
        self.uploads[file_id] = None
        return {"file_id": file_id, "upload_url": f"{self.upload_base}{file_id}"}

    def _m_files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        files = p.get("files") or []
        if any(self.uploads.get(f.get("id")) is None for f in files):
            raise SlackError("file_not_found")
        out = [{"id": f["id"], "title": f.get("title", ""), "name": f.get("title", ""),
                "size": len(self.uploads[f["id"]] or b"")} for f in files]
        if p.get("channel_id"):
            self._m_chat_postMessage({"channel": p["channel_id"], "files": out,
                                      "text": p.get("initial_comment") or "",
                                      "thread_ts": p.get("thread_ts")})
        return {"files": out}
