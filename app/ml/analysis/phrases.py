"""Ordered phrase matching over normalised tokens, indexed so that hundreds of catalogue
phrases cost a dictionary look-up per token rather than a scan per phrase."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from app.ml.analysis import text as tx

MAX_GAP = 2
"""Other words allowed between two words of a phrase ("списали деньги дважды")."""
_KEY = 3


@dataclass(frozen=True, slots=True)
class _Pattern:
    words: tuple[str, ...]
    """Each word exact, or a prefix when it ends in `*`."""
    payload: str


def _word_matches(pattern_word: str, token: str) -> bool:
    if pattern_word.endswith("*"):
        return token.startswith(pattern_word[:-1])
    return token == pattern_word


def compile_phrase(phrase: str) -> tuple[str, ...]:
    """Phrase words as matched: normalised, Cyrillic Uzbek-free (the caller picks tokens)."""
    return tuple(tx.normalize(phrase).replace(",", " ").split())


class PhraseIndex:
    """Finds which payloads (intent names, role cues...) have a phrase in a token list."""

    def __init__(self, phrases: Iterable[tuple[str, str]]) -> None:
        self._by_key: dict[str, list[_Pattern]] = defaultdict(list)
        for phrase, payload in phrases:
            words = compile_phrase(phrase)
            if words:
                self._by_key[words[0].rstrip("*")[:_KEY]].append(_Pattern(words, payload))

    def find(self, words: Sequence[str]) -> list[tuple[str, int]]:
        """(payload, index of the first matched word) for each phrase found, once per phrase."""
        found: list[tuple[str, int]] = []
        seen: set[tuple[str, ...]] = set()
        for start, token in enumerate(words):
            for pattern in self._by_key.get(token[:_KEY], ()):
                if pattern.words in seen or not _word_matches(pattern.words[0], token):
                    continue
                if _rest_matches(pattern.words, words, start):
                    seen.add(pattern.words)
                    found.append((pattern.payload, start))
        return found


def _rest_matches(pattern: tuple[str, ...], words: Sequence[str], start: int) -> bool:
    position = start
    for pattern_word in pattern[1:]:
        window = words[position + 1 : position + 2 + MAX_GAP]
        for offset, token in enumerate(window):
            if _word_matches(pattern_word, token):
                position += 1 + offset
                break
        else:
            return False
    return True
