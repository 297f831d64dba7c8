"""Compiles the configured reply vocabulary to one lookup table of look-alike-folded words."""

from collections.abc import Iterator, Mapping, Sequence
from enum import StrEnum
from typing import NamedTuple, Self

from pydantic import BaseModel, Field, PrivateAttr, model_validator

from services.inbound.domain import keywords
from services.inbound.domain.keywords import expand_template
from services.inbound.domain.normalisation import normalize_reply, skeleton


class ReplyKind(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    OTHER = "other"


class Language(StrEnum):
    EN = "en"
    RU = "ru"


class KeywordMatch(NamedTuple):
    kind: ReplyKind
    keyword: str
    language: Language


def _by_language(table: Mapping[str, Sequence[str]]) -> dict[str, Language]:
    return {entry: Language(code) for code, entries in table.items() for entry in entries}


class KeywordConfig(BaseModel, frozen=True):
    """Holds whole-reply keywords and phrase templates, each mapped to its language."""

    opt_out: Mapping[str, Language] = Field(
        default_factory=lambda: _by_language(keywords.OPT_OUT_KEYWORDS)
    )
    opt_in: Mapping[str, Language] = Field(
        default_factory=lambda: _by_language(keywords.OPT_IN_KEYWORDS)
    )
    opt_out_phrases: Mapping[str, Language] = Field(
        default_factory=lambda: _by_language(keywords.OPT_OUT_PHRASES)
    )
    opt_in_phrases: Mapping[str, Language] = Field(
        default_factory=lambda: _by_language(keywords.OPT_IN_PHRASES)
    )
    courtesy: frozenset[str] = keywords.COURTESY

    _table: dict[str, KeywordMatch] = PrivateAttr(default_factory=dict)
    _courtesy: tuple[tuple[str, ...], ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _compile(self) -> Self:
        sources = [
            (ReplyKind.OPT_OUT, self.opt_out, False),
            (ReplyKind.OPT_IN, self.opt_in, False),
            (ReplyKind.OPT_OUT, self.opt_out_phrases, True),
            (ReplyKind.OPT_IN, self.opt_in_phrases, True),
        ]
        # Templates expand to thousands of replies built from a few dozen words, so each word
        # is normalised once; normalisation never reaches across whitespace, so this is exact.
        words: dict[str, tuple[str, list[str]]] = {}
        for kind, entries, is_template in sources:
            for entry, language in entries.items():
                for text in expand_template(entry) if is_template else [entry]:
                    parts = [words.get(word) or _fold(word, words) for word in text.split()]
                    normalised = " ".join(part[0] for part in parts if part[0])
                    if not normalised:
                        raise ValueError(f"{text!r} is empty once normalised")
                    key = " ".join(" ".join(part[1]) for part in parts if part[1])
                    self._add(key, KeywordMatch(kind, normalised.upper(), language))
        courtesy = {tuple(folded_words(normalize_reply(word))) for word in self.courtesy}
        self._courtesy = tuple(sorted(courtesy - {()}, key=len, reverse=True))
        return self

    def _add(self, key: str, match: KeywordMatch) -> None:
        # Folding look-alikes could make two entries one; refusing the config is the only way
        # to be sure a Russian word never reads as an English one of another kind.
        known = self._table.setdefault(key, match)
        if known != match:
            raise ValueError(f"{match.keyword!r} reads the same as {known.keyword!r} once folded")

    def match(self, words: Sequence[str]) -> KeywordMatch | None:
        """Returns the entry that folded words stand for, allowing courtesy words and
        repetition."""
        for candidate in _candidates(words, self._courtesy):
            found = self._table.get(" ".join(candidate))
            if found is not None:
                return found
        return None


def folded_words(normalised: str) -> list[str]:
    return [word for word in skeleton(normalised).split(" ") if word]


def _fold(word: str, cache: dict[str, tuple[str, list[str]]]) -> tuple[str, list[str]]:
    normalised = normalize_reply(word)
    cache[word] = (normalised, folded_words(normalised))
    return cache[word]


def _strip_courtesy(words: Sequence[str], courtesy: Sequence[tuple[str, ...]]) -> Sequence[str]:
    start, end, stripped = 0, len(words), True
    while stripped:
        stripped = False
        for phrase in courtesy:
            if start + len(phrase) <= end and tuple(words[start : start + len(phrase)]) == phrase:
                start, stripped = start + len(phrase), True
            if end - len(phrase) >= start and tuple(words[end - len(phrase) : end]) == phrase:
                end, stripped = end - len(phrase), True
    return words[start:end]


def _candidates(
    words: Sequence[str], courtesy: Sequence[tuple[str, ...]]
) -> Iterator[Sequence[str]]:
    yield words
    core = _strip_courtesy(words, courtesy)
    yield core
    if len(core) > 1 and len(set(core)) == 1:  # "STOP STOP STOP"
        yield core[:1]
    if len(core) > 1 and all(len(word) == 1 for word in core):  # "S T O P", "S.T.O.P."
        yield ["".join(core)]


DEFAULT_KEYWORDS = KeywordConfig()
