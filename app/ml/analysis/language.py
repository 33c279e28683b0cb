"""Language identification for Uzbek (Latin and Cyrillic), Russian and English.

lingua knows English and Russian but has no Uzbek (Uzbek Latin comes out as Turkish), so each
segment is scored with Uzbek-specific evidence (letters oʻ gʻ ў қ ғ ҳ, frequent words, suffixes)
against Russian or English evidence, and lingua only breaks the remaining ties: between English
and the Turkic languages it does know for Latin text, between Russian and its Cyrillic
neighbours for Cyrillic text. The script settles everything else: Latin text is never Russian.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from app.ml.analysis import text as tx

UNDETERMINED = "und"


def _words(block: str) -> frozenset[str]:
    return frozenset(block.split())


UZ_WORDS = _words(
    """
    va bu shu u men sen siz biz ular uchun bilan ham emas bor yo'q kerak qanday nima nega qachon
    qayerda qayerga rahmat raxmat assalomu alaykum salom xayr iltimos yaxshi juda lekin yana
    endi hozir bugun ertaga kecha mening sizning bizning menga sizga bizga meni sizni uni o'sha
    qiling qilish qildim qildingiz qilib bo'ladi bo'lsa bo'lib bo'ldi edi ekan mumkin olaman
    beraman yordam savol muammo pul karta kartam kartamdan raqam raqami raqamingiz to'lov
    to'lovni hisob hisobim xizmat xizmati ha albatta kuting marhamat kun soat so'm ming million
    mln buyurtma buyurtmam manzil ismim familiyangiz kompaniya kompaniyasi ishlamayapti
    tushunarli aka opa xop mayli qo'ng'iroq bo'lim bo'yicha haqida orqali keyin oldin hali
    allaqachon faqat ko'p katta kichik xush kelibsiz eshitaman gapiring kerakmi bering aytingchi
    yechildi tushmadi kelmadi qaytarib bermoqchiman qilmoqchiman shikoyat norozi xato tez sekin
    internet tarif pulim qancha narxi necha nechta qayta bog'lanamiz jo'natamiz tekshirib
    ko'raman ko'rib chiqamiz menimcha yoki agar chunki hamma har bir hech narsa vaqt
    """
)
_UZ_SUFFIXES = (
    "larni", "larga", "lardan", "ning", "ingiz", "ingizni", "imiz", "yapti", "yapman", "yapmiz",
    "mayapti", "moqchi", "moqchiman", "moqda", "dagi", "madi", "madim", "ganman", "gansiz",
    "sizmi", "mizmi", "aman", "ayman", "dingiz", "ibdi", "ishim", "ingizga", "imni", "imga",
)  # fmt: skip
EN_WORDS = _words(
    """
    the a an is are was were i you we they my your to of and for in on with this that it have
    has can could would should please thank thanks hello hi yes no not do does did what how why
    when where help want need be will me our there here just about from at by so but if good bye
    calling sorry sir okay am been i'm it's don't can't isn't doesn't didn't won't let which who
    get got see check today tomorrow yesterday number account order card payment money
    """
)
RU_WORDS = _words(
    """
    и в не на я что это вы мы он она они с по как но да нет у к за из мне меня вас вам ваш ваша
    ваше мой моя моё мое есть был была было будет можно нужно надо очень спасибо здравствуйте
    пожалуйста хорошо помочь могу чем уже еще ещё когда где почему или если так вот тоже только
    деньги карта карту карты заказ номер сегодня завтра вчера день до свидания добрый хочу хотел
    хотела проблема проблемы почему всё все сейчас минуту подождите скажите его её ее их то же
    бы ли от для при без над под про через после перед вообще просто давайте понятно ладно
    """
)
_RU_SUFFIXES = ("ость", "ться", "ение", "ого", "ому", "ыми", "ами", "ями", "ешь", "ете", "ишь")
_UZ_CYRILLIC_LETTERS = frozenset("ўқғҳ")
_RU_ONLY_LETTERS = frozenset("щы")


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    code: str
    """"uz", "ru", "en" or "und"."""
    script: str
    """"latin", "cyrillic" or "none"."""
    confidence: float
    """0..1: how far the winning evidence is ahead."""
    weight: float
    """How much this segment should count in the call's language (its evidence mass)."""


@lru_cache(maxsize=1)
def _lingua() -> Any:
    """One detector per process; lingua loads each language model lazily on first use.

    Low-accuracy mode (trigrams only): lingua's high-accuracy models held about 220 MB of a
    worker's memory, against 14 MB, and on bench.analysis's labelled calls the language
    accuracy stayed 1.000 (lingua is one signal here, beside the word lists and suffixes).
    """
    from lingua import Language, LanguageDetectorBuilder

    return (
        LanguageDetectorBuilder.from_languages(
            Language.ENGLISH,
            Language.TURKISH,
            Language.AZERBAIJANI,
            Language.RUSSIAN,
            Language.KAZAKH,
            Language.UKRAINIAN,
            Language.BULGARIAN,
            Language.MONGOLIAN,
        )
        .with_low_accuracy_mode()
        .build()
    )


def _lingua_share(text: str, target: str, script_languages: Sequence[str]) -> float:
    """Confidence of `target` among the lingua languages of one script, renormalised."""
    values = {v.language.name: v.value for v in _lingua().compute_language_confidence_values(text)}
    total = sum(values.get(name, 0.0) for name in script_languages)
    return values.get(target, 0.0) / total if total > 0 else 0.5


def _suffix_hits(words: Sequence[str], suffixes: Sequence[str]) -> int:
    return sum(1 for w in words if len(w) > 4 and any(w.endswith(s) for s in suffixes))


def detect_segment(text: str) -> LanguageGuess:
    """Language of one utterance; `und` when it has no letters."""
    if not tx.has_letters(text):
        return LanguageGuess(UNDETERMINED, "none", 0.0, 0.0)
    words = tx.tokens(text)
    words = [w for w in words if not w.isdigit()]
    if tx.cyrillic_share(text) >= 0.5:
        letters = "".join(words)
        uz = 3.0 * sum(1 for c in letters if c in _UZ_CYRILLIC_LETTERS)
        ru = 2.0 * sum(1 for c in letters if c in _RU_ONLY_LETTERS)
        latinised = [tx.uz_cyrillic_to_latin(w) for w in words]
        uz += 2.0 * sum(1 for w in latinised if len(w) > 1 and w in UZ_WORDS)
        uz += 0.75 * _suffix_hits(latinised, _UZ_SUFFIXES)
        ru += 2.0 * sum(1 for w in words if w in RU_WORDS)
        ru += 0.75 * _suffix_hits(words, _RU_SUFFIXES)
        share_ru = _lingua_share(text, "RUSSIAN", _CYRILLIC_LINGUA)
        ru += 2.0 * share_ru
        uz += 2.0 * (1.0 - share_ru)
        return _decide("ru", ru, "uz", uz, "cyrillic")
    normalized = tx.normalize(text)
    # Only oʻ/gʻ count: a bare apostrophe is as English ("don't") as it is Uzbek.
    uz = 3.0 * (normalized.count("o'") + normalized.count("g'"))
    uz += 2.0 * sum(1 for w in words if w in UZ_WORDS)
    uz += 0.75 * _suffix_hits(words, _UZ_SUFFIXES)
    uz += 1.0 * sum(1 for w in words if "q" in w and "qu" not in w)
    en = 2.0 * sum(1 for w in words if w in EN_WORDS)
    share_en = _lingua_share(text, "ENGLISH", _LATIN_LINGUA)
    en += 2.0 * share_en
    uz += 2.0 * (1.0 - share_en)
    return _decide("en", en, "uz", uz, "latin")


_CYRILLIC_LINGUA = ("RUSSIAN", "KAZAKH", "UKRAINIAN", "BULGARIAN", "MONGOLIAN")
_LATIN_LINGUA = ("ENGLISH", "TURKISH", "AZERBAIJANI")


def _decide(a: str, score_a: float, b: str, score_b: float, script: str) -> LanguageGuess:
    total = score_a + score_b
    winner, best, other = (a, score_a, score_b) if score_a >= score_b else (b, score_b, score_a)
    confidence = (best - other) / total if total > 0 else 0.0
    return LanguageGuess(winner, script, round(confidence, 3), weight=best - other)


def detect_call(guesses: Sequence[LanguageGuess]) -> str:
    """The call's language: the one with the most evidence over all its segments."""
    totals: dict[str, float] = defaultdict(float)
    for guess in guesses:
        if guess.code != UNDETERMINED:
            totals[guess.code] += guess.weight
    if not totals:
        return UNDETERMINED
    return max(totals.items(), key=lambda item: item[1])[0]


def settle_segments(guesses: Sequence[LanguageGuess], call_language: str) -> list[str]:
    """Segment codes, with weak guesses (a bare "ok", "да") taken from the call where the script
    allows it: a short Latin "ok" in an Uzbek call is Uzbek, but Latin is never Russian."""
    compatible = {"latin": {"en", "uz"}, "cyrillic": {"ru", "uz"}}
    settled: list[str] = []
    for guess in guesses:
        weak = guess.weight < 2.5
        if weak and call_language in compatible.get(guess.script, set()):
            settled.append(call_language)
        else:
            settled.append(guess.code)
    return settled
