"""Phrase matching that ignores case and script: Uzbek Latin, Uzbek Cyrillic and Russian are
brought to one Latin spelling, token by token, before comparing.

Patterns are literal words with an optional `*` inside a word (any letters). Matching is a
scan over tokens with plain string operations, linear in the text for a given phrase: no
regular expression built from user input, so no pattern can be slow.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from app.ml.analysis.text import normalize, uz_cyrillic_to_latin

WILDCARD = "*"
_TOKEN = re.compile(r"[^\W_]+(?:['ʻʼ‘’`´][^\W_]+)*", re.UNICODE)


@lru_cache(maxsize=65_536)
def fold(word: str) -> str:
    """One spelling for a word in any of our scripts: NFKC, lower case, Cyrillic to Uzbek
    Latin, apostrophes dropped (`oʻzbek`, `o'zbek`, `ўзбек` all become `ozbek`)."""
    lowered = normalize(unicodedata.normalize("NFKC", word))
    return uz_cyrillic_to_latin(lowered).replace("'", "")


@dataclass(frozen=True, slots=True)
class Token:
    folded: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    return [Token(fold(m.group()), m.start(), m.end()) for m in _TOKEN.finditer(text)]


@dataclass(frozen=True, slots=True)
class CompiledPhrase:
    """A phrase as folded word patterns; each is a tuple of literal pieces around `*`s."""

    source: str
    words: tuple[tuple[str, ...], ...]


# Characters that end a token in speech (see `_TOKEN`); in a phrase they separate words too,
# or "call-back" would wait for a single token that speech never yields.
_WORD_BREAKS = str.maketrans({"-": " ", "_": " "})


def _fold_piece(piece: str, *, starts_word: bool) -> str:
    """A literal piece of a word pattern folded as it sits in the word: after a wildcard it
    is inside the word, where Cyrillic `е` is `e`, not the word-initial `ye`."""
    if starts_word:
        return fold(piece)
    return fold("x" + piece)[1:]


def compile_phrase(phrase: str) -> CompiledPhrase:
    words = []
    for word in phrase.translate(_WORD_BREAKS).split():
        pieces = tuple(
            _fold_piece(piece, starts_word=index == 0) if piece else ""
            for index, piece in enumerate(word.split(WILDCARD))
        )
        words.append(pieces)
    return CompiledPhrase(phrase, tuple(words))


def _word_matches(pieces: tuple[str, ...], token: str) -> bool:
    if len(pieces) == 1:
        return pieces[0] == token
    first, *middle, last = pieces
    if len(token) < len(first) + len(last) or not token.startswith(first):
        return False
    if last and not token.endswith(last):
        return False
    position = len(first)
    limit = len(token) - len(last)
    # Leftmost placement of each inner literal is optimal for `*`-only patterns.
    for piece in middle:
        found = token.find(piece, position, limit)
        if found < 0:
            return False
        position = found + len(piece)
    return True


def find_phrase(phrase: CompiledPhrase, tokens: list[Token], text: str) -> list[str]:
    """The matched spans of `text`, as written, for every occurrence of the phrase."""
    size = len(phrase.words)
    matches: list[str] = []
    for start in range(len(tokens) - size + 1):
        if all(
            _word_matches(pieces, tokens[start + offset].folded)
            for offset, pieces in enumerate(phrase.words)
        ):
            matches.append(text[tokens[start].start : tokens[start + size - 1].end])
    return matches
