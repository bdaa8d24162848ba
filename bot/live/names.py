"""Comparing people's names as meeting tools and rosters spell them.

A transcript says "José Álvarez", the roster "jose alvarez", a participants report "JOSÉ ÁLVAREZ": the same
person. Names are compared after case folding, accent stripping and whitespace collapsing, and never more
loosely than that (no first-name or nickname guessing): a wrong match puts words or attendance on the wrong
person, which is worse than no match.
"""

from __future__ import annotations

import unicodedata


def fold(name: str) -> str:
    """The comparable form of a name: case-folded, accents removed, inner whitespace collapsed."""
    decomposed = unicodedata.normalize("NFKD", name)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())
