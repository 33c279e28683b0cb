"""Numbers said as words, in English, Russian and Uzbek (Latin and Cyrillic), read as digits.

A card read aloud reaches the transcript in many shapes: "4532 0151 ...", "four five three
two ...", "сорок пять тридцать два ...", "to'rt besh uch ikki ...". The text detectors in
`app.ml.analysis.entities` match digits, so a run of number words is turned into the digit
string a listener would write down. Words are composed the way they are spoken ("сорок
пять" is 45, "one hundred twenty three" is 123, "две тысячи двадцать" is 2020) and a new
number starts where the composition cannot go on ("four five" is 4 then 5, "сорок пять
тридцать два" is 45 then 32), so digit groups read one after another come out joined:
"4532".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

_APOSTROPHES = re.compile("[ʻʼ’‘`´]")
_EDGE_PUNCTUATION = re.compile(r"^[^\w+'@]+|[^\w']+$")

# Additive values: units, teens, tens, hundreds (a hundreds word that stands on its own).
_WORD_VALUES: dict[str, int] = {
    # English
    "zero": 0, "oh": 0, "nought": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    # Russian
    "ноль": 0, "нуль": 0, "один": 1, "одна": 1, "одно": 1, "два": 2, "две": 2, "три": 3,
    "четыре": 4, "пять": 5, "шесть": 6, "семь": 7, "восемь": 8, "девять": 9, "десять": 10,
    "одиннадцать": 11, "двенадцать": 12, "тринадцать": 13, "четырнадцать": 14,
    "пятнадцать": 15, "шестнадцать": 16, "семнадцать": 17, "восемнадцать": 18,
    "девятнадцать": 19, "двадцать": 20, "тридцать": 30, "сорок": 40, "пятьдесят": 50,
    "шестьдесят": 60, "семьдесят": 70, "восемьдесят": 80, "девяносто": 90, "сто": 100,
    "двести": 200, "триста": 300, "четыреста": 400, "пятьсот": 500, "шестьсот": 600,
    "семьсот": 700, "восемьсот": 800, "девятьсот": 900,
    # Uzbek, Latin script
    "nol": 0, "nul": 0, "bir": 1, "ikki": 2, "uch": 3, "to'rt": 4, "tort": 4, "besh": 5,
    "olti": 6, "yetti": 7, "sakkiz": 8, "to'qqiz": 9, "toqqiz": 9, "o'n": 10, "yigirma": 20,
    "o'ttiz": 30, "qirq": 40, "ellik": 50, "oltmish": 60, "yetmish": 70, "sakson": 80,
    "to'qson": 90,
    # Uzbek, Cyrillic script
    "нол": 0, "бир": 1, "икки": 2, "уч": 3, "тўрт": 4, "беш": 5, "олти": 6, "етти": 7,
    "саккиз": 8, "тўққиз": 9, "ўн": 10, "йигирма": 20, "ўттиз": 30, "қирқ": 40,
    "эллик": 50, "олтмиш": 60, "етмиш": 70, "саксон": 80, "тўқсон": 90,
}  # fmt: skip
# Words that multiply what was said before them ("four hundred", "bir yuz").
_HUNDRED_WORDS = frozenset({"hundred", "yuz", "юз"})
_THOUSAND_WORDS = frozenset({"thousand", "тысяча", "тысячи", "тысяч", "ming", "минг"})

_DIGITS = re.compile(r"\+?\d+(?:[-.]\d+)*")


def normalize_token(text: str) -> str:
    """Lower case, one apostrophe, no surrounding punctuation: how a word is looked up."""
    return _EDGE_PUNCTUATION.sub("", _APOSTROPHES.sub("'", text.strip().lower()))


@dataclass(frozen=True, slots=True)
class NumberToken:
    """One word's part in a number: a digit string as written, or a number word's value."""

    digits: str | None = None
    value: int | None = None
    hundred: bool = False
    thousand: bool = False


@lru_cache(maxsize=65536)
def number_token(text: str) -> NumberToken | None:
    """What a word contributes to a spoken number, or None when it is not part of one
    (cached: a call's vocabulary is small and every word is asked several times)."""
    if "*" in text:
        return None  # a value the transcript masking already replaced ("****9012")
    token = normalize_token(text)
    if not token:
        return None
    if _DIGITS.fullmatch(token):
        return NumberToken(digits=re.sub(r"[^\d+]", "", token))
    if token in _WORD_VALUES:
        return NumberToken(value=_WORD_VALUES[token])
    if token in _HUNDRED_WORDS:
        return NumberToken(hundred=True)
    if token in _THOUSAND_WORDS:
        return NumberToken(thousand=True)
    return None


def _order(value: int) -> int:
    if value >= 100:
        return 100
    if value >= 20 or value == 10:
        return 10
    return 1


class _Composer:
    """Builds one number from words; says when a word cannot extend it."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.current: int | None = None
        self.smallest = 10_000  # the smallest place filled so far
        self.teen = False

    def flush(self) -> None:
        if self.current is not None:
            self.pieces.append(str(self.current))
        self.current = None
        self.smallest = 10_000
        self.teen = False

    def add(self, token: NumberToken) -> None:
        if token.digits is not None:
            self.flush()
            self.pieces.append(token.digits)
            return
        if token.thousand:
            if self.current is None or self.current >= 1000:
                self.flush()
                self.current = 1000
            else:
                self.current *= 1000
            self.smallest = 1000
            self.teen = False
            return
        if token.hundred:
            if self.current is not None and 0 < self.current % 1000 < 10 and self.smallest == 1:
                self.current += (self.current % 1000) * 99
            else:
                self.flush()
                self.current = 100
            self.smallest = 100
            return
        assert token.value is not None
        value = token.value
        order = _order(value)
        fits = (
            self.current is not None
            and value != 0
            and not self.teen
            and order < self.smallest
            and not (10 < value < 20 and self.smallest <= 10)
        )
        if not fits:
            self.flush()
            self.current = value
        else:
            assert self.current is not None
            self.current += value
        self.smallest = order
        self.teen = 10 < value < 20

    def digits(self) -> str:
        self.flush()
        return "".join(self.pieces)


def spoken_digits(tokens: Sequence[NumberToken]) -> str:
    """The digit string a run of number tokens says ("+" kept where a word wrote one)."""
    composer = _Composer()
    for token in tokens:
        composer.add(token)
    joined = composer.digits()
    # A plus can only lead: "+998" then "90" is "+99890".
    return ("+" if joined.startswith("+") else "") + joined.replace("+", "")
