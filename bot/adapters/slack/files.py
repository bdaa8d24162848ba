"""Files a person shares with the bot in a direct message: a transcript, a participant report, an edited recap.

Slash commands carry no files on Slack, so the file comes the way people share files anyway: dropped into the
direct message with Blendwise, with the ``/learn`` arguments as the message (``recording kickoff https://…``,
``attendance kickoff``, ``recap edit kickoff``). The message event lists the file ids; ``files.info`` gives each
file's size, type and private download URL, and the download needs the bot token in an ``Authorization``
header (``files:read`` scope). The result is the same :class:`~bot.events.CommandInvoked` with attachments that
Discord's file option produces, so the core handles both the same way (roles included: a learner sharing a
file gets the same polite refusal as for the command).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, cast
from urllib.error import URLError
from urllib.request import Request, urlopen

from bot import replies
from bot.adapters.slack.convert import (
    ReplyTarget,
    SlackMessageEvent,
    _actor,
    event_workspace,
    mentioned_users,
)
from bot.adapters.slack.render import slack_text_to_plain
from bot.errors import InvalidInput
from bot.events import CommandInvoked

#: The largest file read: transcripts and participant reports are text, a few megabytes at most (the core refuses
#: bigger ones too), so a video shared by mistake is refused before it is downloaded.
MAX_FILE_BYTES = 5_000_000
#: What a subcommand can take: transcripts (.vtt, .srt, .txt), reports and rosters (.csv, .tsv), recaps (.yaml).
FILE_SUFFIXES = frozenset({".vtt", ".srt", ".txt", ".csv", ".tsv", ".yaml", ".yml"})


@dataclass(frozen=True)
class SharedFiles:
    """A direct message with files: who, where, the message (the ``/learn`` arguments) and the file ids."""

    workspace: str
    user_id: str
    channel: str
    text: str
    file_ids: tuple[str, ...]
    ts: str

    @property
    def target(self) -> ReplyTarget:
        # No channel (a modal opened outside a conversation): the reply goes to the app's DM with the person.
        return ReplyTarget(workspace=self.workspace, user_id=self.user_id, channel=self.channel or None)

    def command(self, files: tuple[tuple[str, bytes], ...]) -> CommandInvoked:
        args = " ".join(slack_text_to_plain(self.text).split())
        if args.startswith("/learn"):
            args = args.removeprefix("/learn").strip()
        return CommandInvoked(
            actor=_actor(self.workspace, self.user_id),
            args=args,
            channel=self.channel,
            mentioned_users=mentioned_users(self.text),
            attachments=files,
            dedupe_key=f"slack:file:{self.workspace}:{self.channel}:{self.ts}",
        )


def shared_files(body: dict[str, Any]) -> SharedFiles | None:
    """A person's direct message to the bot that carries files, else ``None`` (channel posts with files are
    conversation, not commands)."""
    event = cast(SlackMessageEvent, body.get("event") or {})
    raw = cast(dict[str, Any], event)
    files = raw.get("files")
    if event.get("type") != "message" or event.get("bot_id") or event.get("channel_type") != "im":
        return None
    if not isinstance(files, list) or not files:
        return None
    user_id, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    ids = tuple(f["id"] for f in files if isinstance(f, dict) and isinstance(f.get("id"), str) and f["id"])
    if not (user_id and channel and ts and ids):
        return None
    return SharedFiles(event_workspace(body), user_id, channel, event.get("text") or "", ids, ts)


@dataclass(frozen=True)
class FileShared:
    """A bare ``file_shared`` event in a direct message with the bot: the file id, and no message text.

    Slack sends it for every file that appears in a conversation the bot is in, beside the message event that
    carries the file when there is one; a file shared from elsewhere (another conversation, the file browser) may
    come with this event only. The message it was shared with, if any, is found through ``files.info``'s shares.
    """

    workspace: str
    user_id: str
    channel: str
    file_id: str
    event_ts: str


def file_shared(body: dict[str, Any]) -> FileShared | None:
    """A person's ``file_shared`` event in a direct message (a ``D`` channel), else ``None``: files shared in
    channels are conversation, and the bot's own uploads (invites' ``.ics``) are never read back."""
    event = body.get("event") or {}
    if not isinstance(event, dict) or event.get("type") != "file_shared":
        return None
    user_id, channel, file_id = event.get("user_id"), event.get("channel_id"), event.get("file_id")
    if not all(isinstance(v, str) and v for v in (user_id, channel, file_id)):
        return None
    bots = {a.get("user_id") for a in body.get("authorizations") or [] if isinstance(a, dict) and a.get("is_bot")}
    if not str(channel).startswith("D") or user_id in bots:
        return None
    return FileShared(event_workspace(body), str(user_id), str(channel), str(file_id), str(event.get("event_ts") or ""))


def share_ts(info: dict[str, Any], channel: str) -> str | None:
    """The ``ts`` of the latest message that shared the file in ``channel``, from ``files.info``'s ``shares``
    (direct messages are under ``private``), or ``None``."""
    shares = info.get("shares") or {}
    found: list[str] = []
    for scope in ("private", "public"):
        entries = (shares.get(scope) or {}).get(channel) if isinstance(shares, dict) else None
        found += [str(e["ts"]) for e in entries or [] if isinstance(e, dict) and e.get("ts")]
    return max(found, key=float) if found else None


#: The ``/learn recording`` modal: typed with no arguments, the command opens a form with Slack's file input.
RECORDING_CALLBACK_ID = "bw_recording_upload"
_INPUTS = (
    ("session", "Session (its step id, e.g. kickoff)", "plain_text_input", False),
    ("cohort", "Cohort (when you lead several with this session)", "plain_text_input", True),
    ("url", "Link to the recording", "url_text_input", False),
    ("file", "Transcript (.vtt, .srt or .txt)", "file_input", True),
)


def recording_modal(channel: str | None) -> dict[str, Any]:
    """The form ``/learn recording`` opens on Slack: the session, the link and the transcript as a file input."""
    blocks = []
    for block_id, label, kind, optional in _INPUTS:
        element: dict[str, Any] = {"type": kind, "action_id": "entry"}
        if kind == "file_input":
            element.update(filetypes=["vtt", "srt", "txt"], max_files=1)
        blocks.append(
            {
                "type": "input",
                "block_id": block_id,
                "optional": optional,
                "label": {"type": "plain_text", "text": label},
                "element": element,
            }
        )
    return {
        "type": "modal",
        "callback_id": RECORDING_CALLBACK_ID,
        "private_metadata": channel or "",
        "title": {"type": "plain_text", "text": "Session recording"},
        "submit": {"type": "plain_text", "text": "Attach"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def recording_submitted(body: dict[str, Any]) -> SharedFiles | None:
    """The submitted recording form -> the ``recording <session> <url> [cohort]`` command and its file ids."""
    view = body.get("view") or {}
    if not isinstance(view, dict) or view.get("callback_id") != RECORDING_CALLBACK_ID:
        return None
    user = body.get("user") or {}
    values = (view.get("state") or {}).get("values") or {}

    def value(block: str) -> dict[str, Any]:
        found = (values.get(block) or {}).get("entry") if isinstance(values, dict) else None
        return found if isinstance(found, dict) else {}

    words = [str(value(b).get("value") or "").strip() for b in ("session", "url", "cohort")]
    ids = tuple(
        f["id"]
        for f in value("file").get("files") or []
        if isinstance(f, dict) and isinstance(f.get("id"), str)
    )
    team = (body.get("team") or {}).get("id") or view.get("team_id") or ""
    if not isinstance(user, dict) or not user.get("id"):
        return None
    text = "recording " + " ".join(w for w in words if w)
    metadata = view.get("private_metadata")
    channel = metadata if isinstance(metadata, str) else ""
    return SharedFiles(team, user["id"], channel, text, ids, str(view.get("id") or ""))


def check(info: dict[str, Any]) -> tuple[str, str]:
    """The file's name and download URL from ``files.info``, or :class:`InvalidInput` saying why it is not read."""
    name = PurePath(str(info.get("name") or info.get("title") or "file")).name
    size = info.get("size")
    url = info.get("url_private_download") or info.get("url_private")
    if PurePath(name).suffix.lower() not in FILE_SUFFIXES:
        raise InvalidInput(replies.file_not_text(name, ", ".join(sorted(FILE_SUFFIXES))))
    if not isinstance(size, int) or size > MAX_FILE_BYTES:
        raise InvalidInput(replies.file_too_big(name, MAX_FILE_BYTES // 1_000_000))
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise InvalidInput(replies.file_download_failed(name))
    return name, url


def download(name: str, url: str, token: str, timeout: float) -> bytes:
    """A private file's bytes: Slack wants the bot token as a Bearer header, never in the URL."""
    request = Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310 - checked http(s) above
    try:
        with urlopen(request, timeout=timeout) as response:  # noqa: S310 - the URL is Slack's files.info answer
            data = cast(bytes, response.read(MAX_FILE_BYTES + 1))
            kind = str(response.headers.get("Content-Type") or "")
    except (URLError, OSError):
        raise InvalidInput(replies.file_download_failed(name)) from None
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput(replies.file_too_big(name, MAX_FILE_BYTES // 1_000_000))
    if kind.startswith("text/html"):
        # Without a valid token Slack answers a download with its sign-in page, not an error status.
        raise InvalidInput(replies.FILE_DOWNLOAD_REFUSED)
    return data
