"""Normalises WhatsApp replies, and folds them to the look-alike skeleton used to match them."""

import re
import unicodedata

# Deleted rather than turned into a space, so that "don't" and "dont" are one word. They are
# removed before NFKC too, because NFKC turns "´" into a space and a combining accent.
_APOSTROPHES = frozenset("'’‘ʼʹ`´＇′")

# Marks and letters that render as nothing: variation selectors (the "emoji style" of 🛑️),
# the combining grapheme joiner, Mongolian selectors, Khmer inherent vowels and the Hangul
# fillers people send as "blank" characters. ZWJ, ZWSP and friends are format characters
# (category Cf) and go with the rest of category C.
_INVISIBLE = frozenset(
    [chr(c) for c in range(0xFE00, 0xFE10)]
    + [chr(c) for c in range(0xE0100, 0xE01F0)]
    + list("\u034f\u180b\u180c\u180d\u180f\u17b4\u17b5\u115f\u1160\u3164\uffa0")
)

# Casefolded Cyrillic letter -> the Latin letter it passes for. The pairs with Т, Н, В, М, К
# look alike only in upper case, but replies are casefolded before this table is used, so the
# lower-case forms stand for both. Latin is the canonical side; Cyrillic letters with no twin
# (п, и, л, ...) stay Cyrillic, which is what keeps СТОП and STOP apart.
LOOKALIKES: dict[str, str] = {
    "а": "a",
    "в": "b",
    "е": "e",
    "к": "k",
    "м": "m",
    "н": "h",
    "о": "o",
    "р": "p",
    "с": "c",
    "т": "t",
    "у": "y",
    "х": "x",
    # Not in the Russian alphabet, but on Ukrainian, Macedonian, Serbian, Kazakh and Komi
    # keyboards, and the usual way to spell a Latin word in Cyrillic ("ЅТОР").
    "ѕ": "s",
    "і": "i",
    "ј": "j",
    "һ": "h",
    "ԁ": "d",
    "ԛ": "q",
    "ԝ": "w",
    "ү": "y",
    "ӏ": "i",
}


_YO = re.compile("е\u0308+")


def _kept(char: str) -> str:
    if char in _APOSTROPHES or char in _INVISIBLE:
        return ""
    if char.isspace():
        return " "
    category = unicodedata.category(char)[0]
    if category in "LMN":
        return char
    # Punctuation and symbols (emoji included) separate words, so "stop,thanks" is two words;
    # control, format, private-use, unassigned and surrogate code points simply vanish.
    return " " if category in "PS" else ""


def normalize_reply(text: str) -> str:
    """Normalises a reply: NFKC, casefold, drop punctuation, symbols and invisibles, collapse
    whitespace, ё -> е."""
    text = "".join(char for char in text if char not in _APOSTROPHES)
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    text = " ".join("".join(_kept(char) for char in text).split())
    # Removing a format character can bring a letter and a combining mark together, so compose
    # once more, and fold ё in decomposed form, where every diaeresis on е can be seen.
    return unicodedata.normalize("NFC", _YO.sub("е", unicodedata.normalize("NFKD", text)))


def skeleton(text: str) -> str:
    """Folds normalised text so that words typed with look-alike letters compare equal.

    Accents are dropped too (й is и, stóp is stop): a reply is read by a person, and a person
    reads these as the same word.
    """
    return "".join(
        LOOKALIKES.get(char, char)
        for char in unicodedata.normalize("NFD", text)
        if not unicodedata.category(char).startswith("M")
    )
