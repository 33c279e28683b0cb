"""Text normalisation shared by the local pieces: apostrophes, Uzbek Cyrillic to Latin, tokens.

Uzbek is written in two scripts and with half a dozen apostrophe look-alikes (oʻ, o‘, o', o`);
every lexicon and catalogue in this package is written once, in Latin with a plain apostrophe,
and text is brought to that form before matching.
"""

from __future__ import annotations

import re
from functools import lru_cache

_APOSTROPHES = str.maketrans(dict.fromkeys("ʻʼ‘’`´ʹ′", "'"))

_UZ_CYR_TO_LAT: dict[str, str] = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "yo", "ж": "j",
    "з": "z", "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "x", "ц": "ts",
    "ч": "ch", "ш": "sh", "щ": "sh", "ъ": "'", "ы": "i", "ь": "", "э": "e", "ю": "yu",
    "я": "ya", "ў": "o'", "қ": "q", "ғ": "g'", "ҳ": "h",
}  # fmt: skip

_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[a-zA-Z]")
_TOKEN = re.compile(r"[^\W\d_](?:[\w']*\w)?|\d+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def normalize(text: str) -> str:
    """Lower case with every apostrophe look-alike turned into `'`."""
    return text.translate(_APOSTROPHES).lower()


def cyrillic_share(text: str) -> float:
    """Share of Cyrillic among the letters of `text` (0 when it has no letters)."""
    cyr = len(_CYRILLIC.findall(text))
    lat = len(_LATIN.findall(text))
    return cyr / (cyr + lat) if cyr + lat else 0.0


def has_letters(text: str) -> bool:
    return bool(_CYRILLIC.search(text) or _LATIN.search(text))


@lru_cache(maxsize=65_536)
def uz_cyrillic_to_latin(word: str) -> str:
    """Transliterate one lower-case Uzbek Cyrillic word; `е` is `ye` at the start of a word."""
    out: list[str] = []
    for position, char in enumerate(word):
        if char == "е" and position == 0:
            out.append("ye")
        else:
            out.append(_UZ_CYR_TO_LAT.get(char, char))
    return "".join(out)


def tokens(text: str) -> list[str]:
    """Normalised word tokens (letters with inner apostrophes, or runs of digits)."""
    return _TOKEN.findall(normalize(text))


def uz_tokens(text: str) -> list[str]:
    """Tokens in Uzbek Latin spelling, whatever script the text was written in."""
    return [uz_cyrillic_to_latin(token) for token in tokens(text)]


def sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]


def word_count(text: str) -> int:
    return len(text.split())


def token_views(text: str) -> list[list[str]]:
    """The tokens as written, plus their Uzbek Latin spelling for Cyrillic text: a phrase list
    holds Russian in Cyrillic and Uzbek in Latin, and Cyrillic text may be either."""
    plain = tokens(text)
    if not _CYRILLIC.search(text):
        return [plain]
    return [plain, [uz_cyrillic_to_latin(token) for token in plain]]
