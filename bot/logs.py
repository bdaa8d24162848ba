"""JSON log lines (``log_format: json``): one object a line, so log shippers need no parsing rules."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    """Formats a record as ``{"ts", "level", "logger", "message"[, "exception"]}``.

    The message is the already-interpolated text, so secrets stay out exactly as they do in text logs (nothing logs
    tokens); extra record attributes are not dumped, for the same reason.
    """

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)
