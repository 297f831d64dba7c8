"""Holds the built-in reply vocabulary, by language code. docs/reply-keywords.md gives the
reasons.

Keywords match a whole reply. Phrases are templates: "(a|b|)" offers alternatives, an empty one
making the group optional; each template expands to a finite set of whole replies. Courtesy
words may stand before or after either ("STOP please", "спасибо, отпишите меня").
"""

# A template that expands past this is a mistake in the config, not a vocabulary.
MAX_EXPANSIONS = 20_000

OPT_OUT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "en": (
        *("STOP", "STOP ALL", "STOPALL", "UNSUBSCRIBE", "UNSUB"),
        *("OPT OUT", "OPTOUT", "QUIT", "REVOKE"),
    ),
    "ru": ("СТОП", "ОТПИСАТЬСЯ", "ОТПИСКА", "ОТПИСЫВАЮСЬ", "ОТПИШИТЕ"),
}

OPT_IN_KEYWORDS: dict[str, tuple[str, ...]] = {
    "en": ("START", "UNSTOP", "SUBSCRIBE", "RESUBSCRIBE", "OPT IN", "OPTIN"),
    "ru": ("СТАРТ", "ПОДПИСАТЬСЯ"),
}

_WHAT = "(messages|these messages|your messages|texts|reminders|notifications|spam|these|this)"
_LIST = "(the|this|your|) (list|mailing list|contact list|database|mailing|messages)"
_WANT = "(i want|i would like|id like|i wish|i need|want|can i|could you|can you) (to|)"
_HOW = "(how do i|how can i|how to|how do you)"
_WHAT_RU = "(сообщения|сообщений|рассылку|рассылки|уведомления|напоминания|смс|ничего|спам)"
_VERB_RU = "(пишите|пиши|присылайте|присылай|шлите|шли|отправляйте|отправляй|беспокойте|беспокой)"
# Russian word order is free: "больше не пишите мне", "мне больше не пишите", ... But only
# imperatives may follow "мне": "мне не надо писать" also reads "I need not write".
_BEFORE_RU = "(больше|мне|больше мне|мне больше|)"
_INFINITIVE_RU = "(писать|присылать|слать|отправлять|беспокоить)"

OPT_OUT_PHRASES: dict[str, tuple[str, ...]] = {
    "en": (
        "stop (messaging|texting|contacting|writing to|spamming|bothering|sending to) me"
        " (anymore|any more|now|again|)",
        f"stop sending (me|) ({_WHAT}|anything|) (to me|) (anymore|)",
        f"stop (the|these|your|all|all the|all these|all your|) {_WHAT}",
        "stop (it|everything|all of it|now)",
        "(dont|do not|never) (message|text|contact|write to|bother|spam|send (messages|anything)"
        " to) me (anymore|any more|again|ever again|)",
        f"(dont|do not|never) send me (any more|more|any|) {_WHAT} (anymore|again|)",
        f"no more {_WHAT}",
        f"unsubscribe (me|) (from ({_WHAT}|all|everything|{_LIST})|)",
        f"(remove|delete|take) me (from|off) {_LIST}",
        "(remove me|delete me|take me off|opt me out|leave me alone)",
        f"opt (me|) out (of|from) ({_WHAT}|all|everything)",
        f"{_WANT} (unsubscribe|opt out|unsubscribe me|opt me out|stop {_WHAT})",
        f"{_WANT} stop (receiving|getting) {_WHAT}",
        f"{_HOW} (unsubscribe|opt out|stop (receiving|getting|) {_WHAT})",
    ),
    "ru": (
        f"{_BEFORE_RU} не {_VERB_RU} (мне|меня|) (больше|) ({_WHAT_RU}|)",
        f"(больше|) (не надо|не нужно) {_BEFORE_RU} {_INFINITIVE_RU} (мне|меня|) ({_WHAT_RU}|)",
        "(прекратите|перестаньте|хватит|прекрати|перестань) (мне|) (писать|присылать|слать"
        f"|отправлять|спамить|беспокоить) (мне|меня|) ({_WHAT_RU}|)",
        f"(прекратите|остановите|отключите|отмените|остановить|отключить|стоп) {_WHAT_RU}",
        "(прекратите|перестаньте|оставьте меня в покое|не беспокоить)",
        "(прошу|) (отпишите|отписать) (меня|) (от (рассылки|всего|сообщений|уведомлений|этого)|)",
        "(я|) (хочу|хотел бы|хотела бы|прошу|можно|могу ли я) (отписаться|отписать меня"
        "|отказаться от рассылки|отключить рассылку)",
        "(отписаться|отказаться|отказываюсь) от (рассылки|сообщений|уведомлений|напоминаний|всего)",
        "как (мне|можно|) (отписаться|отписаться от рассылки|отказаться от рассылки"
        "|отключить (рассылку|уведомления)|остановить рассылку)",
        "(удалите|уберите|исключите) (меня|мой номер) (из (рассылки|списка|базы|списка рассылки)|)",
    ),
}

OPT_IN_PHRASES: dict[str, tuple[str, ...]] = {
    "en": ("(subscribe me|opt me in|opt me back in) (again|)",),
    "ru": ("подпишите меня (снова|обратно|опять|)",),
}

COURTESY: frozenset[str] = frozenset(
    {"please", "pls", "plz", "kindly", "thanks", "thank you", "thx", "ok", "okay", "sorry"}
    | {"hi", "hello", "hey", "good morning", "good afternoon", "good evening"}
    | {"пожалуйста", "плиз", "пжл", "пж", "спасибо", "спс", "ок", "окей"}
    | {"извините", "привет", "здравствуйте", "добрый день", "добрый вечер", "доброе утро"}
)


def expand_template(template: str) -> list[str]:
    """Lists every reply a template stands for: "stop (it|now|)" -> ["stop it", "stop now",
    "stop "]."""
    expansions, end = _alternatives(template, 0)
    if end != len(template):
        raise ValueError(f"unbalanced ')' in {template!r}")
    return expansions


def _alternatives(template: str, start: int) -> tuple[list[str], int]:
    expansions, end = _sequence(template, start)
    while end < len(template) and template[end] == "|":
        more, end = _sequence(template, end + 1)
        expansions += more
    return expansions, end


def _sequence(template: str, start: int) -> tuple[list[str], int]:
    expansions, end = [""], start
    while end < len(template) and template[end] not in "|)":
        if template[end] == "(":
            options, end = _alternatives(template, end + 1)
            if end == len(template):
                raise ValueError(f"unbalanced '(' in {template!r}")
            end += 1
        else:
            literal_end = end
            while literal_end < len(template) and template[literal_end] not in "()|":
                literal_end += 1
            options, end = [template[end:literal_end]], literal_end
        expansions = [head + option for head in expansions for option in options]
        if len(expansions) > MAX_EXPANSIONS:
            raise ValueError(f"{template!r} expands to more than {MAX_EXPANSIONS} replies")
    return expansions, end
