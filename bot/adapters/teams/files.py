"""Attachments as links: a bot cannot attach a file to a personal chat without asking the person's consent first, so
a card links to ``GET /api/files`` instead.

A file the core can make again (an attachment with a ``source``: a learner's session invite, a manager's
team-progress chart) is linked statelessly: the URL carries the source, an expiry and an HMAC-SHA256 of both, keyed
from the deployment's Teams secret. Any process of the HTTP tier serves it, after any restart, by checking the MAC
and the expiry and asking the core for the file at its current state (:meth:`bot.ports.InboundHandler.attachment`),
so an old link to a moved session's invite gives the new time with a higher SEQUENCE and a cancelled one gives
``METHOD:CANCEL``. A missing, forged or tampered MAC, an expired link, and a source that names nothing are all the
same 404: the answer says nothing about which it was.

A link lives :data:`LIFETIME` (longer than any shipped program, so an invite sent at enrolment still opens on the
day), counted in whole days so every link made on one day to one file is the same URL. A link that leaks (a
forwarded card, a chart in a manager's browser history) stops working then instead of serving that learner's
invite or that team's progress for ever. A link from before expiries (no ``e``) is refused like a forged one.

A file without a source (the core sends none today; a feature might) is kept in this process's memory behind a
random token (the newest :data:`MAX_FILES`, each for the same lifetime), so that link works only where the sending
process also serves HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable

from bot.messages import Attachment
from bot.web import HttpRequest, HttpResult

PATH = "/api/files"
MAX_FILES = 20_000
#: How long a file link opens: 120 days, whole days from the day it was made.
LIFETIME_DAYS = 120
DAY = 86_400
#: Binds the link key to this one use, so the deployment's secret itself never signs anything we hand out.
_PURPOSE = b"blendwise teams file links v1"
NOT_FOUND = HttpResult(404, b"not found", headers={"Cache-Control": ["no-store"]})


def link_key(secret: str | bytes | None) -> bytes:
    """The key that signs file links, derived from ``secret`` (the app's client secret or a dedicated one).
    ``None`` gives a random key: links then die with the process (tests, a deployment with no secret)."""
    if secret is None:
        return secrets.token_bytes(32)
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, _PURPOSE, hashlib.sha256).digest()


class FileLinks:
    """Signs links to attachments and serves them.

    Args:
        key: from :func:`link_key`; never logged.
        lifetime_days: how many whole days a link opens (:data:`LIFETIME_DAYS`).
        now: the wall clock, in epoch seconds (links outlive the process, so this is real time).
        remake: the core's :meth:`~bot.ports.InboundHandler.attachment`, or ``None`` before the adapter started.
    """

    def __init__(
        self, key: bytes, *, lifetime_days: int = LIFETIME_DAYS, now: Callable[[], float] = time.time
    ) -> None:
        self._key = key
        self._lifetime = max(1, lifetime_days) * DAY
        self._now = now
        self.remake: Callable[[str], Attachment | None] | None = None
        self._memory: OrderedDict[str, tuple[Attachment, int]] = OrderedDict()
        self._lock = threading.Lock()

    def _mac(self, source: str, expires: int) -> str:
        signed = b"file:" + source.encode() + b"\x00" + str(expires).encode()
        digest = hmac.new(self._key, signed, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def _expires(self) -> int:
        """The end of the day ``lifetime`` from today (epoch seconds, UTC days)."""
        return (int(self._now()) // DAY + 1) * DAY + self._lifetime

    def link(self, base: str, attachment: Attachment) -> tuple[str, str]:
        """(title, URL) of ``attachment`` behind ``base`` (the public URL of the HTTP tier)."""
        expires = self._expires()
        if attachment.source:
            query = {"s": attachment.source, "e": str(expires), "t": self._mac(attachment.source, expires)}
        else:
            token = secrets.token_urlsafe(24)
            with self._lock:
                self._memory[token] = (attachment, expires)
                while len(self._memory) > MAX_FILES:
                    self._memory.popitem(last=False)
            query = {"m": token}
        query["name"] = attachment.filename  # last: a client that guesses the type from the URL sees ``.ics``
        return attachment.title or attachment.filename, f"{base.rstrip('/')}{PATH}?{urllib.parse.urlencode(query)}"

    def _find(self, query: dict[str, list[str]]) -> Attachment | None:
        source, mac, until = query.get("s", [""])[0], query.get("t", [""])[0], query.get("e", [""])[0]
        now = self._now()
        if source:
            if not mac or not (until.isascii() and until.isdigit()) or len(until) > 12:
                return None
            if not hmac.compare_digest(self._mac(source, int(until)).encode(), mac.encode()):
                return None
            if now >= int(until):
                return None
            return self.remake(source) if self.remake is not None else None
        with self._lock:
            kept = self._memory.get(query.get("m", [""])[0])
        return kept[0] if kept is not None and now < kept[1] else None

    def serve(self, request: HttpRequest) -> HttpResult:
        """``GET /api/files``: the file, or 404 for anything this process cannot vouch for."""
        if request.method not in ("GET", "HEAD"):
            return HttpResult(405, b"method not allowed", headers={"Allow": ["GET"]})
        found = self._find(urllib.parse.parse_qs(request.query))
        data = found.data() if found is not None else None
        if found is None or data is None:
            return NOT_FOUND
        disposition = f'attachment; filename="{re.sub(r"[^A-Za-z0-9._-]", "_", found.filename)}"'
        return HttpResult(200, data, content_type=found.mimetype,
                          headers={"Content-Disposition": [disposition], "Cache-Control": ["private, no-store"]})
