"""Properties of the reply classifier that hold for every keyword and every text."""

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.inbound.domain import keywords
from services.inbound.domain.classifier import (
    Classification,
    Language,
    ReplyKind,
    classify_reply,
    normalize_reply,
)
from services.inbound.domain.normalisation import LOOKALIKES

OPT_OUTS = [(kw, Language(code)) for code, kws in keywords.OPT_OUT_KEYWORDS.items() for kw in kws]
OPT_INS = [(kw, Language(code)) for code, kws in keywords.OPT_IN_KEYWORDS.items() for kw in kws]

# Latin twin -> its Cyrillic look-alikes, and the other way round, to disguise keywords with.
TWINS: dict[str, list[str]] = {}
for cyrillic, latin in LOOKALIKES.items():
    TWINS.setdefault(latin, []).append(cyrillic)
    TWINS.setdefault(cyrillic, []).append(latin)

WRAPPING_PIECES = (
    *(" ", "\t", "\n", "\u00a0", "\u2003", "\u3000", "\u200b", "\ufeff"),
    *("!", "?", ".", ",", "…", "«", "»", '"', "(", ")", "*", "_", "~", "-", "—"),
    *("🛑", "✋🏻", "🙏", "❤️", "👨\u200d👩\u200d👧", "🇷🇺"),
)
WRAPPING = st.lists(st.sampled_from(WRAPPING_PIECES), max_size=8).map("".join)
INVISIBLE = st.sampled_from(["", "\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\ufe0f"])
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()))  # lone surrogates included


@st.composite
def disguised(draw: st.DrawFn, keyword: str) -> str:
    """The keyword with look-alike letters, in random case, full width or with invisibles."""
    full_width = draw(st.booleans())
    letters = []
    for letter in keyword.lower():
        letter = draw(st.sampled_from([letter, *TWINS.get(letter, [])]))
        letter = draw(st.sampled_from([letter, letter.upper()]))
        if full_width and letter.isascii() and letter.isalpha():
            letter = chr(ord(letter) + 0xFEE0)
        letters.append(letter + draw(INVISIBLE))
    return "".join(letters)


def _classified_as(kind: ReplyKind, keyword: str, language: Language) -> Classification:
    return Classification(kind=kind, keyword=normalize_reply(keyword).upper(), language=language)


@given(st.sampled_from(OPT_OUTS), st.data(), WRAPPING, WRAPPING)
def test_any_opt_out_keyword_in_any_disguise_and_wrapping_stays_that_opt_out(
    entry: tuple[str, Language], data: st.DataObject, before: str, after: str
) -> None:
    keyword, language = entry
    reply = before + data.draw(disguised(keyword)) + after
    assert classify_reply(reply) == _classified_as(ReplyKind.OPT_OUT, keyword, language)


@given(st.sampled_from(OPT_INS), st.data(), WRAPPING, WRAPPING)
def test_any_opt_in_keyword_in_any_disguise_and_wrapping_stays_that_opt_in(
    entry: tuple[str, Language], data: st.DataObject, before: str, after: str
) -> None:
    keyword, language = entry
    reply = before + data.draw(disguised(keyword)) + after
    assert classify_reply(reply) == _classified_as(ReplyKind.OPT_IN, keyword, language)


@given(
    st.sampled_from(OPT_OUTS),
    st.sampled_from(["don't", "do not", "never", "не надо", "не", "which", "why"]),
)
def test_an_opt_out_keyword_after_a_negation_or_question_word_is_not_an_opt_out(
    entry: tuple[str, Language], prefix: str
) -> None:
    assert classify_reply(f"{prefix} {entry[0]}").kind != ReplyKind.OPT_OUT


@settings(deadline=timedelta(milliseconds=200), max_examples=500)
@given(ANY_TEXT)
def test_any_text_is_classified_quickly_without_raising(text: str) -> None:
    result = classify_reply(text)
    assert (result.kind == ReplyKind.OTHER) == (result.keyword is None)


@settings(deadline=timedelta(milliseconds=200), max_examples=200)
@given(st.text(min_size=1, max_size=20).map(lambda text: text * (4_096 // len(text))))
def test_long_texts_are_classified_quickly(text: str) -> None:
    classify_reply(text)


@settings(max_examples=1_000)
@given(ANY_TEXT)
def test_normalisation_is_idempotent(text: str) -> None:
    once = normalize_reply(text)
    assert normalize_reply(once) == once


@given(ANY_TEXT)
def test_normalised_text_has_no_edge_or_double_spaces(text: str) -> None:
    normalised = normalize_reply(text)
    assert normalised == " ".join(normalised.split(" ")).strip()
    assert "  " not in normalised
