"""Uploaded text files (transcripts, participant reports) -> text, refusing what is not text in one line."""

from __future__ import annotations

from bot.errors import InvalidInput

_UTF16 = (b"\xff\xfe", b"\xfe\xff")


def decode_upload(data: bytes, name: str, *, error: type[InvalidInput], binary: str, not_utf8: str) -> str:
    """Decode an uploaded text file: UTF-16 by its byte-order mark (Teams exports), else UTF-8 with or without one.

    Newlines become ``\\n``. ``binary`` and ``not_utf8`` finish the one-line refusals (``name: ...`` and
    ``name: line N: ...``).

    Raises:
        error: a binary file (NUL bytes without a UTF-16 mark), or bytes that are not UTF-8.
    """
    if data.startswith(_UTF16):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise error(f"{name}: line 1: the file says UTF-16 but is not; {not_utf8}") from None
    elif b"\x00" in data[:4096]:
        raise error(f"{name}: {binary}")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise error(f"{name}: line {line}: the file is not UTF-8 text; {not_utf8}") from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
