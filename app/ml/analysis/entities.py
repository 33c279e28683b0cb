"""Entities found in one utterance: pattern types (phones, emails, money, dates, times, cards,
accounts, order/contract numbers) and names (natasha for Russian, self-introductions elsewhere).

Extractors run in a fixed order and each claims its span, so a card number is never read again
as a phone, nor an order number as money.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import phonenumbers

from app.ml.analysis import text as tx

PHONE = "PHONE"
EMAIL = "EMAIL"
CARD = "CARD"
ACCOUNT = "ACCOUNT"
ORDER = "ORDER"
MONEY = "MONEY"
DATE = "DATE"
TIME = "TIME"
PERSON = "PERSON"
ORG = "ORG"
LOCATION = "LOCATION"

PII_TYPES = frozenset({PHONE, EMAIL, CARD, ACCOUNT})
"""Types masked in text, words and entity values when REDACT_PII is on."""


@dataclass(frozen=True, slots=True)
class Span:
    type: str
    start: int
    end: int
    value: str
    """Canonical value: E.164 phone, lower-case email, "150000 UZS", digits of a card..."""


def mask_digits(digits: str) -> str:
    """Card and account numbers are only ever shown by their last four digits."""
    return "****" + digits[-4:]


def mask_phone(e164: str) -> str:
    keep = 4 if e164.startswith("+998") else 2
    return e164[:keep] + "*" * max(0, len(e164) - keep - 2) + e164[-2:]


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def masked_value(span: Span) -> str:
    """The value as shown when PII is redacted."""
    if span.type in (CARD, ACCOUNT):
        return mask_digits(span.value)
    if span.type == PHONE:
        return mask_phone(span.value)
    if span.type == EMAIL:
        return mask_email(span.value)
    return span.value


def text_mask(span: Span) -> str:
    """What replaces the span in a redacted transcript."""
    if span.type in (CARD, ACCOUNT):
        return mask_digits(span.value)
    return f"[{span.type}]"


# --- patterns ---------------------------------------------------------------------------------

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"(?<![\d-])(?:\d{4}[ -]?){3}\d{4}(?:[ -]?\d{1,3})?(?![\d-])")
_ACCOUNT = re.compile(
    r"(?i)(?:account|acct|лицев\w*\s+сч[её]т\w*|сч[её]т\w*|л/с|hisob\w*|ҳисоб\w*|шот\w*)"
    r"(?:\s+(?:number|no\.?|номер|raqami|raqamim|рақами|#|№))?[\s:#№-]*"
    r"(?P<num>\d(?:[ -]?\d){5,24})(?!\d)"
)
_BANK_ACCOUNT = re.compile(r"(?<![\d-])\d{20}(?![\d-])")  # Uzbek bank accounts have 20 digits
_ORDER = re.compile(
    r"(?i)(?:order|contract|ticket|invoice|tracking|заказ\w*|договор\w*|заявк\w*|накладн\w*|"
    r"buyurtma\w*|shartnoma\w*|ariza\w*|буюртма\w*|шартнома\w*|ариза\w*)"
    r"(?:\s+(?:number|no\.?|номер|raqami|рақами|№|#))?\s*[:#№]?\s*"
    r"(?P<code>(?=[A-Za-z-]*\d)[A-Za-z]{0,4}[-/]?\d[\dA-Za-z/-]{2,})"
)
_NUMBER = r"\d{1,3}(?:[ \u00a0.,]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_MULTIPLIER = (
    r"ming|минг|тысяч\w*|тыс\.?|thousand|k|mln|млн\.?|million\w*|миллион\w*|milliard\w*|mlrd|"
    r"миллиард\w*|млрд\.?|billion"
)
_CURRENCY = (
    r"so'm\w*|сўм\w*|сум(?:ов|а|ы)?|sum|som|uzs|руб\w*|р\.|rub|₽|dollar\w*|доллар\w*|долл\.?|"
    r"usd|\$|евро|euro\w*|eur|€"
)
_MONEY_AFTER = re.compile(
    rf"(?i)(?<![\w.])(?P<num>{_NUMBER})\s?(?P<mult>{_MULTIPLIER})?\s?(?P<cur>{_CURRENCY})(?![\w])"
)
_MONEY_BEFORE = re.compile(
    rf"(?i)(?P<cur>\$|€|usd|uzs|rub)\s?(?P<num>{_NUMBER})(?:\s?(?P<mult>{_MULTIPLIER})(?!\w))?"
)
_MONTHS = (
    r"январ\w*|феврал\w*|март\w*|апрел\w*|ма[йяе]|июн\w*|июл\w*|август\w*|сентябр\w*|"
    r"октябр\w*|ноябр\w*|декабр\w*|yanvar\w*|fevral\w*|mart\w*|aprel\w*|may\w*|iyun\w*|"
    r"iyul\w*|avgust\w*|sentabr\w*|oktabr\w*|noyabr\w*|dekabr\w*|январ\w*|сентябр\w*|"
    r"january|february|march|april|june|july|august|september|october|november|december|"
    r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_RELATIVE_DAYS = (
    r"today|tomorrow|yesterday|сегодня|завтра|вчера|послезавтра|позавчера|bugun\w*|ertaga\w*|"
    r"indinga|kecha|кеча|бугун\w*|эртага\w*|monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
    r"понедельник\w*|вторник\w*|сред[аеуы]|четверг\w*|пятниц\w*|суббот\w*|воскресень\w*|"
    r"dushanba\w*|seshanba\w*|chorshanba\w*|payshanba\w*|juma\w*|shanba\w*|yakshanba\w*|"
    r"душанба\w*|сешанба\w*|чоршанба\w*|пайшанба\w*|жума\w*|шанба\w*|якшанба\w*|"
    r"next week|next month|на следующей неделе|в следующем месяце|keyingi hafta\w*|keyingi oy\w*"
)
_DATE = re.compile(
    rf"(?i)(?<![\w.:/-])(?:"
    rf"\d{{4}}-\d{{2}}-\d{{2}}"
    rf"|\d{{1,2}}[./]\d{{1,2}}[./]\d{{2,4}}"
    rf"|\d{{1,2}}(?:st|nd|rd|th|-?го|-?chi)?(?:\s+of)?[\s-](?:{_MONTHS})(?:\s+\d{{4}})?"
    rf"|(?:{_MONTHS})\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?"
    rf"|(?:{_RELATIVE_DAYS})"
    rf")(?![\w])"
)
_TIME = re.compile(
    r"(?i)(?<![\w.:])(?:"
    r"(?:soat|соат)\s+\d{1,2}(?::\d{2})?(?:\s?(?:da|га|ga|дан|dan|да))?"
    r"|(?:в|к|до|после|с)\s+\d{1,2}(?::\d{2})?\s+(?:час\w*|утра|вечера|дня)"
    r"|\d{1,2}:\d{2}(?:\s?(?:am|pm|a\.m\.|p\.m\.))?"
    r"|\d{1,2}\s?(?:am|pm|a\.m\.|p\.m\.|o'clock)"
    r")(?![\w])"
)
_INTRODUCTION = re.compile(
    r"(?:my name is|this is|меня зовут|моё имя|мое имя|ismim|mening ismim|исмим|менинг исмим)"
    r"\s+(?P<name>[A-ZА-ЯЁЎҚҒҲ][\w'ʻ’-]+(?:\s+[A-ZА-ЯЁЎҚҒҲ][\w'ʻ’-]+)?)",
    re.IGNORECASE,
)

_MULTIPLIERS: list[tuple[str, float]] = [
    ("ming", 1e3), ("минг", 1e3), ("тыс", 1e3), ("thousand", 1e3), ("k", 1e3),
    ("mlrd", 1e9), ("milliard", 1e9), ("миллиард", 1e9), ("млрд", 1e9), ("billion", 1e9),
    ("mln", 1e6), ("млн", 1e6), ("million", 1e6), ("миллион", 1e6),
]  # fmt: skip
_CURRENCIES: list[tuple[str, str]] = [
    ("so'm", "UZS"), ("сўм", "UZS"), ("сум", "UZS"), ("sum", "UZS"), ("som", "UZS"),
    ("uzs", "UZS"), ("руб", "RUB"), ("р.", "RUB"), ("rub", "RUB"), ("₽", "RUB"),
    ("dollar", "USD"), ("доллар", "USD"), ("долл", "USD"), ("usd", "USD"), ("$", "USD"),
    ("евро", "EUR"), ("euro", "EUR"), ("eur", "EUR"), ("€", "EUR"),
]  # fmt: skip


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


# Uzbek payment cards (Uzcard 8600, Humo 9860) are not Luhn-checked here: test and fake numbers
# read out by agents often fail the checksum but must still be masked.
_CARD_PREFIXES = ("8600", "9860", "5614", "6262", "4", "5", "2")


def _cards(text: str) -> Iterator[Span]:
    for match in _CARD.finditer(text):
        digits = _digits(match.group())
        if 13 <= len(digits) <= 19 and (digits.startswith(_CARD_PREFIXES) or _luhn_ok(digits)):
            yield Span(CARD, match.start(), match.end(), digits)


def _accounts(text: str) -> Iterator[Span]:
    for match in _ACCOUNT.finditer(text):
        yield Span(ACCOUNT, match.start("num"), match.end("num"), _digits(match.group("num")))
    for match in _BANK_ACCOUNT.finditer(text):
        yield Span(ACCOUNT, match.start(), match.end(), match.group())


def _orders(text: str) -> Iterator[Span]:
    for match in _ORDER.finditer(text):
        code = match.group("code").rstrip("-/").upper()
        yield Span(ORDER, match.start("code"), match.start("code") + len(code), code)


def _emails(text: str) -> Iterator[Span]:
    for match in _EMAIL.finditer(text):
        yield Span(EMAIL, match.start(), match.end(), match.group().lower())


def _amount(number: str, multiplier: str | None) -> float:
    compact = number.replace("\u00a0", " ")
    if re.fullmatch(r"\d{1,3}(?:[ .,]\d{3})+", compact):
        value = float(re.sub(r"\D", "", compact))
    elif re.fullmatch(r"\d{1,3}(?:[ .,]\d{3})+[.,]\d{1,2}", compact):
        value = float(re.sub(r"\D", "", compact[:-3]) + "." + compact[-2:].lstrip(".,"))
    else:
        value = float(compact.replace(" ", "").replace(",", "."))
    if multiplier:
        lowered = tx.normalize(multiplier)
        for prefix, factor in _MULTIPLIERS:
            if lowered.startswith(prefix):
                value *= factor
                break
    return value


def _currency(token: str) -> str:
    lowered = tx.normalize(token)
    for prefix, code in _CURRENCIES:
        if lowered.startswith(prefix):
            return code
    return lowered.upper()


def _format_money(amount: float, currency: str) -> str:
    shown = f"{amount:.0f}" if amount == int(amount) else f"{amount:.2f}"
    return f"{shown} {currency}"


def _money(text: str) -> Iterator[Span]:
    normalized = tx.normalize(text)  # so'm spelled with any apostrophe
    for pattern in (_MONEY_AFTER, _MONEY_BEFORE):
        for match in pattern.finditer(normalized):
            value = _format_money(
                _amount(match.group("num"), match.group("mult")), _currency(match.group("cur"))
            )
            yield Span(MONEY, match.start(), match.end(), value)


def _phones(text: str) -> Iterator[Span]:
    if sum(c.isdigit() for c in text) < 7:
        return
    for region in ("UZ", "RU"):
        for match in phonenumbers.PhoneNumberMatcher(text, region):
            raw = match.raw_string
            # The RU pass only exists for Russian trunk-prefixed numbers ("8 (495) ...").
            if region == "RU" and not _digits(raw).startswith(("8", "7")):
                continue
            e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            yield Span(PHONE, match.start, match.end, e164)


def _dates(text: str) -> Iterator[Span]:
    for match in _DATE.finditer(text):
        yield Span(DATE, match.start(), match.end(), match.group())


def _times(text: str) -> Iterator[Span]:
    for match in _TIME.finditer(text):
        yield Span(TIME, match.start(), match.end(), match.group())


_PATTERN_EXTRACTORS: tuple[Callable[[str], Iterator[Span]], ...] = (
    _cards, _accounts, _orders, _emails, _money, _phones, _times, _dates,
)  # fmt: skip
_PII_EXTRACTORS: tuple[Callable[[str], Iterator[Span]], ...] = (
    _cards, _accounts, _orders, _emails, _phones,
)  # fmt: skip


def _claim(text: str, extractors: Sequence[Callable[[str], Iterator[Span]]]) -> list[Span]:
    """Run extractors in order; each sees the text with earlier claims blanked out."""
    found: list[Span] = []
    working = text
    for extract in extractors:
        for span in extract(working):
            if any(span.start < other.end and other.start < span.end for other in found):
                continue
            found.append(span)
            working = working[: span.start] + " " * (span.end - span.start) + working[span.end :]
    return sorted(found, key=lambda span: span.start)


def pattern_spans(text: str) -> list[Span]:
    """Every pattern entity of one utterance, in text order."""
    return _claim(text, _PATTERN_EXTRACTORS)


def pii_spans(text: str) -> list[Span]:
    """The spans redaction must mask (orders are claimed only so they are not taken as phones)."""
    return [span for span in _claim(text, _PII_EXTRACTORS) if span.type in PII_TYPES]


def introduced_names(text: str) -> list[Span]:
    """Names people give for themselves ("меня зовут Анна", "ismim Dilnoza")."""
    return [
        Span(PERSON, m.start("name"), m.end("name"), m.group("name"))
        for m in _INTRODUCTION.finditer(text)
        if m.group("name")[0].isupper()
    ]


_NATASHA_TYPES = {"PER": PERSON, "ORG": ORG, "LOC": LOCATION}
_CAPITALISED_INSIDE = re.compile(r"[^.!?]\s+[A-ZА-ЯЁ]")


def russian_names(texts: Sequence[str]) -> list[list[Span]]:
    """natasha NER over Russian utterances, batched; only utterances with a capitalised word
    past the start of a sentence are run, the rest cannot hold a name natasha would find."""
    from app.ml.analysis.models import natasha

    results: list[list[Span]] = [[] for _ in texts]
    todo = [i for i, text in enumerate(texts) if _CAPITALISED_INSIDE.search(text)]
    if not todo:
        return results
    _, tagger = natasha()
    for i, markup in zip(todo, tagger.map([texts[i] for i in todo]), strict=True):
        for span in markup.spans:
            kind = _NATASHA_TYPES.get(span.type)
            if kind:
                value = texts[i][span.start : span.stop]
                results[i].append(Span(kind, span.start, span.stop, value))
    return results
