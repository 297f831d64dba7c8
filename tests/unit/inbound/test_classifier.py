"""The reply classifier, as a table of replies and what each one means for consent."""

import time

import pytest
from pydantic import ValidationError

from services.inbound.domain import keywords
from services.inbound.domain.classifier import (
    Classification,
    KeywordConfig,
    Language,
    ReplyKind,
    classify_reply,
    detect_language,
    normalize_reply,
)
from services.inbound.domain.keywords import expand_template
from services.inbound.domain.normalisation import LOOKALIKES, skeleton

EN, RU = Language.EN, Language.RU


def opt_out(text: str, keyword: str, language: Language, rule: str) -> object:
    return pytest.param(text, ReplyKind.OPT_OUT, keyword, language, id=f"opt-out: {rule}")


def opt_in(text: str, keyword: str, language: Language, rule: str) -> object:
    return pytest.param(text, ReplyKind.OPT_IN, keyword, language, id=f"opt-in: {rule}")


def other(text: str, language: Language | None, rule: str) -> object:
    return pytest.param(text, ReplyKind.OTHER, None, language, id=f"other: {rule}")


OPT_OUT_KEYWORDS = [
    opt_out("STOP", "STOP", EN, "STOP (clause 4.2)"),
    opt_out("stop", "STOP", EN, "lower case"),
    opt_out("Stop", "STOP", EN, "title case"),
    opt_out("sToP", "STOP", EN, "mixed case"),
    opt_out("   STOP  ", "STOP", EN, "surrounding spaces"),
    opt_out("\tstop\r\n", "STOP", EN, "tabs and newlines"),
    opt_out("STOP.", "STOP", EN, "full stop"),
    opt_out("stop!", "STOP", EN, "exclamation mark"),
    opt_out("STOP!!!", "STOP", EN, "several exclamation marks"),
    opt_out("stop?", "STOP", EN, "a question mark does not make STOP a question"),
    opt_out('"STOP"', "STOP", EN, "quoted"),
    opt_out("*STOP*", "STOP", EN, "WhatsApp bold"),
    opt_out("_stop_", "STOP", EN, "WhatsApp italic"),
    opt_out("~STOP~", "STOP", EN, "WhatsApp strikethrough markup"),
    opt_out("```STOP```", "STOP", EN, "WhatsApp monospace"),
    opt_out("🛑 STOP 🛑", "STOP", EN, "stop-sign emoji around"),
    opt_out("STOP 🙏", "STOP", EN, "trailing emoji"),
    opt_out("✋🏻stop✋🏻", "STOP", EN, "emoji with skin tone, no spaces"),
    opt_out("❤️STOP❤️", "STOP", EN, "emoji with variation selector"),
    opt_out("👨‍👩‍👧 STOP", "STOP", EN, "ZWJ emoji sequence"),
    opt_out("ＳＴＯＰ", "STOP", EN, "full-width letters"),
    opt_out("ｓｔｏｐ！", "STOP", EN, "full-width lower case and punctuation"),
    opt_out("S\u200bTOP", "STOP", EN, "zero-width space inside"),
    opt_out("\u200dSTOP\u200d", "STOP", EN, "zero-width joiners around"),
    opt_out("\ufeffSTOP", "STOP", EN, "byte order mark"),
    opt_out("ST\u00adOP", "STOP", EN, "soft hyphen inside"),
    opt_out("STO\u2060P", "STOP", EN, "word joiner inside"),
    opt_out("STOP\u3164", "STOP", EN, "Hangul filler blank"),
    opt_out("\u00a0STOP\u2003", "STOP", EN, "no-break and em spaces"),
    opt_out("\ud800STOP\udfff", "STOP", EN, "lone surrogates are dropped like control codes"),
    opt_out("\x00STOP\x07", "STOP", EN, "control characters are dropped"),
    opt_out("S T O P", "STOP", EN, "spelled out with spaces"),
    opt_out("S.T.O.P.", "STOP", EN, "spelled out with dots"),
    opt_out("stop stop", "STOP", EN, "repeated"),
    opt_out("STOP STOP STOP!!!", "STOP", EN, "repeated three times"),
    opt_out("stop please", "STOP", EN, "polite suffix"),
    opt_out("please stop", "STOP", EN, "polite prefix"),
    opt_out("Please, STOP.", "STOP", EN, "polite prefix with punctuation"),
    opt_out("stop, thanks", "STOP", EN, "thanks suffix"),
    opt_out("stop,thanks", "STOP", EN, "punctuation separates words"),
    opt_out("stop thank you", "STOP", EN, "two-word courtesy"),
    opt_out("ok stop", "STOP", EN, "ok prefix"),
    opt_out("Hi, STOP please. Thanks!", "STOP", EN, "greeting and thanks"),
    opt_out("STOP ALL", "STOP ALL", EN, "STOP ALL"),
    opt_out("stopall", "STOPALL", EN, "STOPALL"),
    opt_out("UNSUBSCRIBE", "UNSUBSCRIBE", EN, "UNSUBSCRIBE"),
    opt_out("Unsubscribe.", "UNSUBSCRIBE", EN, "Unsubscribe with full stop"),
    opt_out("unsubscribe please", "UNSUBSCRIBE", EN, "unsubscribe please"),
    opt_out("unsub", "UNSUB", EN, "UNSUB"),
    opt_out("OPT OUT", "OPT OUT", EN, "OPT OUT"),
    opt_out("opt-out", "OPT OUT", EN, "hyphenated opt-out"),
    opt_out("OPT_OUT", "OPT OUT", EN, "button payload spelling"),
    opt_out("optout", "OPTOUT", EN, "OPTOUT"),
    opt_out("QUIT", "QUIT", EN, "QUIT"),
    opt_out("revoke", "REVOKE", EN, "REVOKE"),
    opt_out("СТОП", "СТОП", RU, "STOP in Russian (clause 4.2)"),
    opt_out("стоп", "СТОП", RU, "Russian lower case"),
    opt_out("Стоп", "СТОП", RU, "Russian title case"),
    opt_out("СТОП!!!", "СТОП", RU, "Russian with exclamation marks"),
    opt_out("стоп.", "СТОП", RU, "Russian with full stop"),
    opt_out("🛑СТОП🛑", "СТОП", RU, "Russian with emoji, no spaces"),
    opt_out("стоп, спасибо", "СТОП", RU, "Russian thanks suffix"),
    opt_out("Стоп пожалуйста", "СТОП", RU, "Russian please suffix"),
    opt_out("Пожалуйста, стоп!", "СТОП", RU, "Russian please prefix"),
    opt_out("Здравствуйте, СТОП", "СТОП", RU, "greeting prefix"),
    opt_out("стоп стоп", "СТОП", RU, "Russian repeated"),
    opt_out("С Т О П", "СТОП", RU, "Russian spelled out"),
    opt_out("сто\u200bп", "СТОП", RU, "Russian with zero-width space"),
    opt_out("сто́п", "СТОП", RU, "stress mark"),
    opt_out("ОТПИСАТЬСЯ", "ОТПИСАТЬСЯ", RU, "Russian unsubscribe (otpisatsya)"),
    opt_out("отписаться", "ОТПИСАТЬСЯ", RU, "Russian unsubscribe in lower case"),
    opt_out("Отписка", "ОТПИСКА", RU, "Russian unsubscription (otpiska)"),
    opt_out("отписываюсь", "ОТПИСЫВАЮСЬ", RU, "Russian I'm unsubscribing (otpisyvayus)"),
    opt_out("Отпишите!", "ОТПИШИТЕ", RU, "Russian unsubscribe-me imperative (otpishite)"),
]

HOMOGLYPHS = [
    opt_out("CTOП", "СТОП", RU, "Latin C T O with Cyrillic Pe reads as the Russian STOP"),
    opt_out("cтoп", "СТОП", RU, "lower-case mix of scripts reads as the Russian STOP"),
    opt_out("СТOП", "СТОП", RU, "Latin O in the Russian STOP"),
    opt_out("ＣＴＯП", "СТОП", RU, "full-width Latin with Cyrillic Pe"),
    opt_out("OTПИCKA", "ОТПИСКА", RU, "Latin O C K A in otpiska"),
    opt_out("отписатьcя", "ОТПИСАТЬСЯ", RU, "Latin c in otpisatsya"),
    opt_out("STОP", "STOP", EN, "Cyrillic O in STOP"),
    opt_out("SТOP", "STOP", EN, "Cyrillic Te in STOP"),
    opt_out("stoр", "STOP", EN, "Cyrillic er in stop"),
    opt_out("ЅТОР", "STOP", EN, "all Cyrillic: dze, te, o, er read as STOP"),
    opt_out("ＳТＯＰ", "STOP", EN, "full-width with Cyrillic Te"),
    opt_out("UNSUBSCRІBE", "UNSUBSCRIBE", EN, "Ukrainian I in UNSUBSCRIBE"),
    opt_out("ОРТ ОUТ", "OPT OUT", EN, "Cyrillic O Er Te in OPT OUT"),
]

OPT_OUT_PHRASES = [
    opt_out("please stop messaging me", "STOP MESSAGING ME", EN, "please stop messaging me"),
    opt_out("Please stop messaging me!", "STOP MESSAGING ME", EN, "same with capitals"),
    opt_out("stop texting me", "STOP TEXTING ME", EN, "stop texting me"),
    opt_out("stop spamming me", "STOP SPAMMING ME", EN, "stop spamming me"),
    opt_out("stop sending me messages", "STOP SENDING ME MESSAGES", EN, "stop sending"),
    opt_out(
        "Stop sending me these messages.",
        "STOP SENDING ME THESE MESSAGES",
        EN,
        "stop sending me these messages",
    ),
    opt_out("stop the reminders", "STOP THE REMINDERS", EN, "stop the reminders"),
    opt_out("stop these messages", "STOP THESE MESSAGES", EN, "stop these messages"),
    opt_out("STOP ALL MESSAGES", "STOP ALL MESSAGES", EN, "stop all messages"),
    opt_out("stop it", "STOP IT", EN, "stop it"),
    opt_out("don't message me anymore", "DONT MESSAGE ME ANYMORE", EN, "dont message me"),
    opt_out("Don’t message me anymore", "DONT MESSAGE ME ANYMORE", EN, "curly apostrophe"),
    opt_out("do not contact me again", "DO NOT CONTACT ME AGAIN", EN, "do not contact me"),
    opt_out("never text me again", "NEVER TEXT ME AGAIN", EN, "never text me again"),
    opt_out(
        "dont send me any more reminders",
        "DONT SEND ME ANY MORE REMINDERS",
        EN,
        "dont send me any more reminders",
    ),
    opt_out("no more messages", "NO MORE MESSAGES", EN, "no more messages"),
    opt_out("No more reminders, please", "NO MORE REMINDERS", EN, "no more reminders please"),
    opt_out("unsubscribe me", "UNSUBSCRIBE ME", EN, "unsubscribe me"),
    opt_out(
        "Unsubscribe me from this list",
        "UNSUBSCRIBE ME FROM THIS LIST",
        EN,
        "unsubscribe me from this list",
    ),
    opt_out("remove me from the list", "REMOVE ME FROM THE LIST", EN, "remove me from the list"),
    opt_out(
        "please remove me from your list",
        "REMOVE ME FROM YOUR LIST",
        EN,
        "please remove me from your list",
    ),
    opt_out("take me off your list", "TAKE ME OFF YOUR LIST", EN, "take me off your list"),
    opt_out("remove me", "REMOVE ME", EN, "remove me"),
    opt_out("opt me out", "OPT ME OUT", EN, "opt me out"),
    opt_out("leave me alone!", "LEAVE ME ALONE", EN, "leave me alone"),
    opt_out("I want to unsubscribe", "I WANT TO UNSUBSCRIBE", EN, "I want to unsubscribe"),
    opt_out("I'd like to opt out", "ID LIKE TO OPT OUT", EN, "I'd like to opt out"),
    opt_out(
        "i would like to stop receiving these messages",
        "I WOULD LIKE TO STOP RECEIVING THESE MESSAGES",
        EN,
        "I would like to stop receiving these messages",
    ),
    opt_out("how do I unsubscribe?", "HOW DO I UNSUBSCRIBE", EN, "asking how to unsubscribe"),
    opt_out(
        "How can I stop these messages?",
        "HOW CAN I STOP THESE MESSAGES",
        EN,
        "asking how to stop these messages",
    ),
    opt_out("how to opt out", "HOW TO OPT OUT", EN, "how to opt out"),
    opt_out("how do I stop these?", "HOW DO I STOP THESE", EN, "asking how to stop these"),
    opt_out(
        "Hi, please stop sending me messages, thanks",
        "STOP SENDING ME MESSAGES",
        EN,
        "phrase between greeting and thanks",
    ),
    opt_out("больше не пишите", "БОЛЬШЕ НЕ ПИШИТЕ", RU, "ru: write no more"),
    opt_out("Больше не пишите мне!", "БОЛЬШЕ НЕ ПИШИТЕ МНЕ", RU, "ru: write to me no more"),
    opt_out("не пишите мне", "НЕ ПИШИТЕ МНЕ", RU, "ru: don't write to me"),
    opt_out("не пишите мне больше", "НЕ ПИШИТЕ МНЕ БОЛЬШЕ", RU, "ru: don't write to me any more"),
    opt_out("нe пишитe мнe", "НЕ ПИШИТЕ МНЕ", RU, "phrase with Latin e"),
    opt_out(
        "Не присылайте мне сообщения",
        "НЕ ПРИСЫЛАЙТЕ МНЕ СООБЩЕНИЯ",
        RU,
        "ru: don't send me messages",
    ),
    opt_out(
        "больше не присылайте ничего", "БОЛЬШЕ НЕ ПРИСЫЛАЙТЕ НИЧЕГО", RU, "ru: send nothing more"
    ),
    opt_out("не надо мне писать", "НЕ НАДО МНЕ ПИСАТЬ", RU, "ru: no need to write to me"),
    opt_out("мне больше не пишите", "МНЕ БОЛЬШЕ НЕ ПИШИТЕ", RU, "ru: free word order"),
    opt_out("не надо мне больше писать", "НЕ НАДО МНЕ БОЛЬШЕ ПИСАТЬ", RU, "ru: no need any more"),
    opt_out("хватит мне писать", "ХВАТИТ МНЕ ПИСАТЬ", RU, "ru: enough writing to me"),
    opt_out("не беспокойте меня", "НЕ БЕСПОКОЙТЕ МЕНЯ", RU, "ru: don't disturb me"),
    opt_out(
        "прекратите присылать сообщения",
        "ПРЕКРАТИТЕ ПРИСЫЛАТЬ СООБЩЕНИЯ",
        RU,
        "ru: cease sending messages",
    ),
    opt_out("Прекратите рассылку", "ПРЕКРАТИТЕ РАССЫЛКУ", RU, "ru: cease the mailing"),
    opt_out("перестаньте писать мне", "ПЕРЕСТАНЬТЕ ПИСАТЬ МНЕ", RU, "ru: stop writing to me"),
    opt_out("хватит писать", "ХВАТИТ ПИСАТЬ", RU, "ru: enough writing"),
    opt_out("хватит спамить!", "ХВАТИТ СПАМИТЬ", RU, "ru: enough spamming"),
    opt_out("отключите уведомления", "ОТКЛЮЧИТЕ УВЕДОМЛЕНИЯ", RU, "ru: switch off notifications"),
    opt_out("отпишите меня", "ОТПИШИТЕ МЕНЯ", RU, "ru: unsubscribe me"),
    opt_out("Отпишите меня, пожалуйста", "ОТПИШИТЕ МЕНЯ", RU, "ru: unsubscribe me please"),
    opt_out(
        "отпишите меня от рассылки",
        "ОТПИШИТЕ МЕНЯ ОТ РАССЫЛКИ",
        RU,
        "ru: unsubscribe me from the mailing",
    ),
    opt_out(
        "отписаться от рассылки", "ОТПИСАТЬСЯ ОТ РАССЫЛКИ", RU, "ru: unsubscribe from the mailing"
    ),
    opt_out("хочу отписаться", "ХОЧУ ОТПИСАТЬСЯ", RU, "ru: want to unsubscribe"),
    opt_out("Я хочу отписаться.", "Я ХОЧУ ОТПИСАТЬСЯ", RU, "ru: I want to unsubscribe"),
    opt_out("как отписаться?", "КАК ОТПИСАТЬСЯ", RU, "asking how to unsubscribe in Russian"),
    opt_out(
        "Как отписаться от рассылки?",
        "КАК ОТПИСАТЬСЯ ОТ РАССЫЛКИ",
        RU,
        "asking how to leave the mailing",
    ),
    opt_out(
        "удалите меня из рассылки", "УДАЛИТЕ МЕНЯ ИЗ РАССЫЛКИ", RU, "ru: delete me from the mailing"
    ),
    opt_out(
        "уберите мой номер из базы",
        "УБЕРИТЕ МОЙ НОМЕР ИЗ БАЗЫ",
        RU,
        "ru: remove my number from the database",
    ),
    opt_out("оставьте меня в покое", "ОСТАВЬТЕ МЕНЯ В ПОКОЕ", RU, "ru: leave me alone"),
    opt_out(
        "Здравствуйте! Отпишите меня от рассылки. Спасибо!",
        "ОТПИШИТЕ МЕНЯ ОТ РАССЫЛКИ",
        RU,
        "phrase between greeting and thanks in Russian",
    ),
]

OPT_INS = [
    opt_in("START", "START", EN, "START"),
    opt_in("start", "START", EN, "start lower case"),
    opt_in("Start!", "START", EN, "start with exclamation mark"),
    opt_in("Start?", "START", EN, "start with question mark"),
    opt_in("START please", "START", EN, "start please"),
    opt_in("🟢 START 🟢", "START", EN, "start with emoji"),
    opt_in("ＳＴＡＲＴ", "START", EN, "full-width START"),
    opt_in("STАRT", "START", EN, "Cyrillic A in START"),
    opt_in("UNSTOP", "UNSTOP", EN, "UNSTOP"),
    opt_in("subscribe", "SUBSCRIBE", EN, "SUBSCRIBE"),
    opt_in("resubscribe", "RESUBSCRIBE", EN, "RESUBSCRIBE"),
    opt_in("opt in", "OPT IN", EN, "OPT IN"),
    opt_in("OPT-IN", "OPT IN", EN, "hyphenated OPT-IN"),
    opt_in("optin", "OPTIN", EN, "OPTIN"),
    opt_in("subscribe me again", "SUBSCRIBE ME AGAIN", EN, "subscribe me again"),
    opt_in("opt me back in", "OPT ME BACK IN", EN, "opt me back in"),
    opt_in("СТАРТ", "СТАРТ", RU, "START in Russian"),
    opt_in("старт", "СТАРТ", RU, "Russian start in lower case"),
    opt_in("старт, спасибо", "СТАРТ", RU, "Russian start with thanks"),
    opt_in("CTAPT", "СТАРТ", RU, "all-Latin CTAPT reads as the Russian START"),
    opt_in("подписаться", "ПОДПИСАТЬСЯ", RU, "Russian subscribe (podpisatsya)"),
    opt_in("Подпишите меня обратно", "ПОДПИШИТЕ МЕНЯ ОБРАТНО", RU, "ru: subscribe me back"),
]

NOT_CONSENT = [
    other("which bus stop?", EN, "the word in another sense"),
    other("don't stop the reminders", EN, "negation of stop"),
    other("stopwatch", EN, "a longer word"),
    other("nonstop", EN, "a word ending in stop"),
    other("I can't stop laughing", EN, "stop in a sentence"),
    other("stop by our office tomorrow", EN, "phrasal verb"),
    other("stop the car", EN, "stop with an unrelated object"),
    other("please don't stop", EN, "polite negation"),
    other("never stop", EN, "never stop"),
    other("don't unsubscribe me", EN, "negated unsubscribe"),
    other("do not unsubscribe me", EN, "negated unsubscribe, long form"),
    other("I don't want to unsubscribe", EN, "not wanting to unsubscribe"),
    other("keep messaging me", EN, "the opposite request"),
    other("message me", EN, "a request to be messaged"),
    other("STOP. I never signed up for this", EN, "keyword then a sentence: whole message only"),
    other("how do I stop?", EN, "how do I stop without an object"),
    other("stopp", EN, "misspelling: no fuzzy matching"),
    other("cancel", EN, "CANCEL is left out: cancel a booking"),
    other("CANCEL", EN, "CANCEL in capitals"),
    other("end", EN, "END is left out: end a chat"),
    other("enough", EN, "ENOUGH is left out"),
    other("not interested", EN, "not interested is left out"),
    other("wrong number", EN, "wrong number is left out"),
    other("when does it start?", EN, "start in a question"),
    other("start the course", EN, "start with an object"),
    other("don't start", EN, "negated start"),
    other("subscribe me to the newsletter", EN, "opt-in phrases stay narrow"),
    other("yes", EN, "yes"),
    other("ok", EN, "courtesy word alone"),
    other("thanks", EN, "thanks alone"),
    other("please", EN, "please alone"),
    other("стоп-кран", RU, "ru: emergency brake (stop-kran)"),
    other("стоп кран", RU, "ru: emergency brake with a space"),
    other("остановка", RU, "ru: bus stop (ostanovka)"),
    other("не надо стоп", RU, "ru: no need for stop"),
    other("не отписывайте меня", RU, "ru: don't unsubscribe me"),
    other("я не хочу отписываться", RU, "not wanting to unsubscribe in Russian"),
    other("пишите мне", RU, "a request to be written to"),
    other("пишите мне больше", RU, "a request for more messages"),
    other("мне не надо писать", RU, "ru: dative reading, I need not write"),
    other("не прекращайте присылать", RU, "ru: don't cease sending"),
    other("Стоп! Подождите, я перепутал", RU, "ru: stop then a sentence"),
    other("стоп, а когда начало?", RU, "ru: stop then a question"),
    other("отмена", RU, "ru: OTMENA (cancel) is left out"),
    other("хватит", RU, "ru: bare KHVATIT (enough) is left out"),
    other("не подписывайте меня", RU, "ru: don't subscribe me"),
    other("когда старт?", RU, "ru: start in a question"),
    other("да", RU, "ru: yes"),
    other("спасибо", RU, "ru: thanks alone"),
    other("Привет", RU, "a greeting"),
    other("", None, "empty"),
    other("   ", None, "only spaces"),
    other("🛑", None, "only an emoji"),
    other("!!!", None, "only punctuation"),
    other("123", None, "only digits"),
    other("\u200b\u200d", None, "only zero-width characters"),
    other(
        "Hello, I would like to know more about the event on Saturday. " * 4 + "stop",
        EN,
        "over 200 characters is not read for keywords",
    ),
]

TABLE = OPT_OUT_KEYWORDS + HOMOGLYPHS + OPT_OUT_PHRASES + OPT_INS + NOT_CONSENT


@pytest.mark.parametrize(("text", "kind", "keyword", "language"), TABLE)
def test_reply_is_classified_as_the_rules_say(
    text: str, kind: ReplyKind, keyword: str | None, language: Language | None
) -> None:
    assert classify_reply(text) == Classification(kind=kind, keyword=keyword, language=language)


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        pytest.param("ＳＴＯＰ", "stop", id="NFKC turns full-width letters into ASCII"),
        pytest.param("STOP", "stop", id="case is folded"),
        pytest.param("Straße", "strasse", id="case folding, not lower-casing"),
        pytest.param("  a \t\n b  ", "a b", id="whitespace collapses and is stripped"),
        pytest.param("stop!!!", "stop", id="punctuation goes"),
        pytest.param("stop,thanks", "stop thanks", id="punctuation between words separates them"),
        pytest.param("🛑stop🛑", "stop", id="emoji go"),
        pytest.param("❤️‍🔥 ok", "ok", id="ZWJ emoji sequences and variation selectors go"),
        pytest.param("s\u200bt\u200co\u2060p", "stop", id="zero-width characters vanish"),
        pytest.param("don't", "dont", id="apostrophes join, not split"),
        pytest.param("Don´t", "dont", id="acute accent used as an apostrophe"),
        pytest.param("ёлка Ёж", "елка еж", id="yo is ye"),
        pytest.param("е\u0308", "е", id="decomposed yo is ye"),
        pytest.param("сто́п", "сто\u0301п", id="combining marks stay"),
        pytest.param("½", "1 2", id="fractions keep their digits"),
        pytest.param("CTOП", "ctoп", id="scripts are not changed, only folded when matching"),
    ],
)
def test_normalisation_steps(text: str, normalised: str) -> None:
    assert normalize_reply(text) == normalised


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param("Привет, когда начало?", RU, id="Cyrillic letters are Russian"),
        pytest.param("When does it begin?", EN, id="Latin letters are English"),
        pytest.param("Hellо", EN, id="one Cyrillic look-alike does not make English Russian"),
        pytest.param("ok, спасибо", RU, id="mostly Russian"),
        pytest.param("CTO", EN, id="only look-alikes: the script they are typed in"),
        pytest.param("СТО", RU, id="only Cyrillic look-alikes"),
        pytest.param("hello привет", None, id="an even mix is unclear"),
        pytest.param("123 🛑", None, id="no letters"),
        pytest.param("こんにちは", None, id="neither script"),
        pytest.param("", None, id="empty"),
    ],
)
def test_detect_language(text: str, language: Language | None) -> None:
    assert detect_language(text) == language


def _entries() -> list[tuple[str, ReplyKind, Language]]:
    entries = []
    for kind, words, phrases in [
        (ReplyKind.OPT_OUT, keywords.OPT_OUT_KEYWORDS, keywords.OPT_OUT_PHRASES),
        (ReplyKind.OPT_IN, keywords.OPT_IN_KEYWORDS, keywords.OPT_IN_PHRASES),
    ]:
        for code, spellings in words.items():
            entries += [(spelling, kind, Language(code)) for spelling in spellings]
        for code, templates in phrases.items():
            for template in templates:
                entries += [(text, kind, Language(code)) for text in expand_template(template)]
    return entries


ENTRIES = _entries()
RUSSIAN_TWINS = frozenset("авекмнорстух")


def test_every_keyword_and_phrase_expansion_classifies_as_itself() -> None:
    wrong = [
        text
        for text, kind, language in ENTRIES
        if classify_reply(text)
        != Classification(kind=kind, keyword=normalize_reply(text).upper(), language=language)
    ]
    assert wrong == []


def test_no_word_typed_in_russian_letters_folds_into_an_english_entry() -> None:
    # An English entry needs a letter no Russian letter passes for, so folding can only ever
    # read an English word into it, never a Russian one (СТОП can't become STOP, and so on).
    twins = {LOOKALIKES[letter] for letter in RUSSIAN_TWINS}
    english = [text for text, _, language in ENTRIES if language == EN]
    assert [text for text in english if set(skeleton(normalize_reply(text))) <= twins | {" "}] == []


def test_russian_entries_spellable_in_latin_letters_are_only_the_reviewed_ones() -> None:
    # СТАРТ is all look-alikes, so "CTAPT" reads as СТАРТ, which is right: it is no English
    # word. Any new entry like it must be checked the same way before it joins this list.
    russian = [text for text, _, language in ENTRIES if language == RU]
    spellable = {
        skeleton(normalize_reply(text))
        for text in russian
        if all(char.isascii() for char in skeleton(normalize_reply(text)))
    }
    assert spellable == {"ctapt"}


def test_single_letter_folds_do_not_turn_near_misses_into_keywords() -> None:
    near_misses = ["СТОН", "СТОК", "СТОЛ", "STEP", "SHOP", "STOR", "CTOP", "СТАРЫЙ", "STAR"]
    near_misses += ["СТАТЬ", "QUILT", "ПИСАТЬ", "ПОДПИСАТЬ", "OPT", "STOPS", "СТОПЫ"]
    assert {classify_reply(word).kind for word in near_misses} == {ReplyKind.OTHER}


def test_config_refuses_entries_that_read_the_same_once_folded() -> None:
    with pytest.raises(ValidationError, match="reads the same"):
        KeywordConfig(opt_out={"СТОП": RU}, opt_in={"CTOП": RU})


def test_config_refuses_an_entry_that_normalises_to_nothing() -> None:
    with pytest.raises(ValidationError, match="empty once normalised"):
        KeywordConfig(opt_out={"🛑": EN})


@pytest.mark.parametrize("template", ["stop (it|now", "stop it|now)", "(a|b)" * 20])
def test_config_refuses_broken_or_exploding_templates(template: str) -> None:
    with pytest.raises(ValidationError):
        KeywordConfig(opt_out_phrases={template: EN})


def test_templates_expand_alternatives_and_optional_groups() -> None:
    assert expand_template("stop (sending (me|)|it) (now|)") == [
        "stop sending me now",
        "stop sending me ",
        "stop sending  now",
        "stop sending  ",
        "stop it now",
        "stop it ",
    ]


def test_a_configured_keyword_list_replaces_the_defaults() -> None:
    config = KeywordConfig(opt_out={"ХВАТИТ": RU}, opt_in={}, opt_out_phrases={}, opt_in_phrases={})
    assert classify_reply("Хватит!", config).keyword == "ХВАТИТ"
    assert classify_reply("STOP", config).kind == ReplyKind.OTHER


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("STOP " * 20_000, id="100k characters of STOP"),
        pytest.param("🛑" * 100_000, id="100k emoji"),
        pytest.param("\u200b" * 100_000 + "STOP", id="STOP behind 100k zero-width spaces"),
        pytest.param("\ud800" * 100_000, id="100k lone surrogates"),
        pytest.param("ﷺ" * 4_000, id="characters that NFKC expands eighteenfold"),
    ],
)
def test_huge_replies_are_other_and_cheap(text: str) -> None:
    started = time.perf_counter()
    assert classify_reply(text).kind == ReplyKind.OTHER
    assert time.perf_counter() - started < 0.5
