"""Classifies a WhatsApp reply as an opt-out, an opt-in or anything else (contract §5,
clause 4.2)."""

import unicodedata

from pydantic import BaseModel

from services.inbound.domain.normalisation import LOOKALIKES, normalize_reply
from services.inbound.domain.vocabulary import (
    DEFAULT_KEYWORDS,
    KeywordConfig,
    Language,
    ReplyKind,
    folded_words,
)

__all__ = [
    "DEFAULT_KEYWORDS",
    "Classification",
    "KeywordConfig",
    "Language",
    "ReplyKind",
    "classify_reply",
    "detect_language",
    "normalize_reply",
]

# WhatsApp caps a text body at 4096 characters; anything longer is not a reply we must read.
MAX_REPLY_CHARS = 4096
# The longest built-in phrase is under 60 characters; a longer reply is a conversation for a
# person, and the cap keeps the work per message small and constant.
MAX_NORMALISED_CHARS = 200


class Classification(BaseModel, frozen=True):
    kind: ReplyKind
    keyword: str | None = None
    language: Language | None = None


def classify_reply(text: str, config: KeywordConfig = DEFAULT_KEYWORDS) -> Classification:
    """Matches the whole reply to a keyword or a phrase, after normalisation and look-alike
    folding."""
    if len(text) <= MAX_REPLY_CHARS:
        normalised = normalize_reply(text)
        if len(normalised) <= MAX_NORMALISED_CHARS:
            found = config.match(folded_words(normalised))
            if found is not None:
                return Classification(
                    kind=found.kind, keyword=found.keyword, language=found.language
                )
    return Classification(kind=ReplyKind.OTHER, language=detect_language(text))


_TWIN_LATIN = frozenset(LOOKALIKES.values())


def detect_language(text: str) -> Language | None:
    """Detects Russian or English by the letters of the reply; None when neither clearly prevails.

    Letters with a twin in the other script (о/o, с/c, ...) only count when no other letter
    decides, so a stray homoglyph cannot turn an English reply Russian.
    """
    distinct = {Language.EN: 0, Language.RU: 0}
    twins = {Language.EN: 0, Language.RU: 0}
    for char in unicodedata.normalize("NFKC", text[:MAX_REPLY_CHARS]).casefold():
        if "\u0400" <= char <= "\u052f":
            (twins if char in LOOKALIKES else distinct)[Language.RU] += 1
        elif char.isalpha() and (char < "\u0250" or "\u1e00" <= char <= "\u1eff"):
            (twins if char in _TWIN_LATIN else distinct)[Language.EN] += 1
    counts = distinct if any(distinct.values()) else twins
    if counts[Language.EN] == counts[Language.RU]:
        return None
    return Language.EN if counts[Language.EN] > counts[Language.RU] else Language.RU
