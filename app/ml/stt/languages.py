"""Language codes: Whisper's language set, and the codes other recognisers use for them."""

from __future__ import annotations

WHISPER_LANGUAGES: dict[str, str] = {
    "en": "english",
    "zh": "chinese",
    "de": "german",
    "es": "spanish",
    "ru": "russian",
    "ko": "korean",
    "fr": "french",
    "ja": "japanese",
    "pt": "portuguese",
    "tr": "turkish",
    "pl": "polish",
    "ca": "catalan",
    "nl": "dutch",
    "ar": "arabic",
    "sv": "swedish",
    "it": "italian",
    "id": "indonesian",
    "hi": "hindi",
    "fi": "finnish",
    "vi": "vietnamese",
    "he": "hebrew",
    "uk": "ukrainian",
    "el": "greek",
    "ms": "malay",
    "cs": "czech",
    "ro": "romanian",
    "da": "danish",
    "hu": "hungarian",
    "ta": "tamil",
    "no": "norwegian",
    "th": "thai",
    "ur": "urdu",
    "hr": "croatian",
    "bg": "bulgarian",
    "lt": "lithuanian",
    "la": "latin",
    "mi": "maori",
    "ml": "malayalam",
    "cy": "welsh",
    "sk": "slovak",
    "te": "telugu",
    "fa": "persian",
    "lv": "latvian",
    "bn": "bengali",
    "sr": "serbian",
    "az": "azerbaijani",
    "sl": "slovenian",
    "kn": "kannada",
    "et": "estonian",
    "mk": "macedonian",
    "br": "breton",
    "eu": "basque",
    "is": "icelandic",
    "hy": "armenian",
    "ne": "nepali",
    "mn": "mongolian",
    "bs": "bosnian",
    "kk": "kazakh",
    "sq": "albanian",
    "sw": "swahili",
    "gl": "galician",
    "mr": "marathi",
    "pa": "punjabi",
    "si": "sinhala",
    "km": "khmer",
    "sn": "shona",
    "yo": "yoruba",
    "so": "somali",
    "af": "afrikaans",
    "oc": "occitan",
    "ka": "georgian",
    "be": "belarusian",
    "tg": "tajik",
    "sd": "sindhi",
    "gu": "gujarati",
    "am": "amharic",
    "yi": "yiddish",
    "lo": "lao",
    "uz": "uzbek",
    "fo": "faroese",
    "ht": "haitian creole",
    "ps": "pashto",
    "tk": "turkmen",
    "nn": "nynorsk",
    "mt": "maltese",
    "sa": "sanskrit",
    "lb": "luxembourgish",
    "my": "myanmar",
    "bo": "tibetan",
    "tl": "tagalog",
    "mg": "malagasy",
    "as": "assamese",
    "tt": "tatar",
    "haw": "hawaiian",
    "ln": "lingala",
    "ha": "hausa",
    "ba": "bashkir",
    "jw": "javanese",
    "su": "sundanese",
    "yue": "cantonese",
}
"""ISO 639-1 (Whisper's own extensions `haw`, `yue`) -> the English name Whisper and the
OpenAI API report."""

_BY_NAME = {name: code for code, name in WHISPER_LANGUAGES.items()}

SEAMLESS_CODES: dict[str, str] = {
    "en": "eng",
    "ru": "rus",
    "uz": "uzn",
    "kk": "kaz",
    "tg": "tgk",
    "ky": "kir",
    "tr": "tur",
    "az": "azj",
    "uk": "ukr",
    "be": "bel",
    "de": "deu",
    "fr": "fra",
    "es": "spa",
    "it": "ita",
    "pt": "por",
    "ar": "arb",
    "fa": "pes",
    "hi": "hin",
    "ur": "urd",
    "zh": "cmn",
    "ja": "jpn",
    "ko": "kor",
    "pl": "pol",
    "nl": "nld",
    "ka": "kat",
    "hy": "hye",
}
"""ISO 639-1 -> the ISO 639-3 code Seamless M4T v2 expects as `tgt_lang` (the languages a
Central Asian contact centre meets; extend as needed)."""


def language_code(value: str | None) -> str | None:
    """ISO 639-1 for a code or an English language name ("english", "Uzbek"); None if unknown."""
    if not value:
        return None
    key = value.strip().lower()
    if key in WHISPER_LANGUAGES:
        return key
    return _BY_NAME.get(key)


def language_name(code: str) -> str:
    """English name of an ISO 639-1 code for messages ("uz" -> "Uzbek")."""
    name = WHISPER_LANGUAGES.get(code)
    return name.title() if name else code


CLOSE_RELATIVES: dict[str, tuple[str, ...]] = {
    "uz": ("az", "tr", "kk", "tk", "tt", "ba", "ug", "ky"),
    "ru": ("uk", "be", "bg", "mk", "sr"),
    "kk": ("ky", "tt", "ba"),
    "en": (),
}
"""Configured language -> languages an audio identifier confuses it with.

Whisper's language identification hardly knows Uzbek: on Uzbek speech it names Azerbaijani,
Turkish or Kazakh and gives `uz` almost no probability. When a relative is not itself one of
the centre's languages, its probability counts for the configured language it stands for
(a Turkic language for Uzbek, an East/South Slavic one for Russian). A relative that is
configured itself (`kk` in `LANGUAGES=uz,kk`) keeps its own probability, and a relative
counts once, for the first configured language that claims it."""


def parse_language_list(value: str) -> tuple[str, ...]:
    """`"uz, ru,en"` -> ("uz", "ru", "en"); raises ValueError naming an unknown code."""
    codes: list[str] = []
    for raw in value.split(","):
        code = raw.strip().lower()
        if not code:
            continue
        if code not in WHISPER_LANGUAGES:
            raise ValueError(
                f"unknown language code {code!r}: use ISO 639-1 codes such as uz, ru, en"
            )
        if code not in codes:
            codes.append(code)
    if not codes:
        raise ValueError("no language given: set LANGUAGES to ISO 639-1 codes, e.g. uz,ru,en")
    return tuple(codes)


UNDER_REPRESENTED = ("uz", "tg", "tk", "ky", "kk")
"""Languages Whisper was trained on little or none of, most under-represented first. On such
speech Whisper spreads its probability over unrelated languages (Latvian, Japanese, Swahili,
Georgian ... on the shared USC Uzbek clips), whereas on English or Russian speech it is
confidently right. So probability on languages that are neither configured nor a configured
language's relative counts for the first of these that is configured."""


def fold_relatives(
    probabilities: dict[str, float], configured: tuple[str, ...]
) -> dict[str, float]:
    """Probabilities over the configured languages only: each relative's probability added to
    the configured language it stands for (CLOSE_RELATIVES), the remaining mass to the most
    under-represented configured language (UNDER_REPRESENTED) when there is one; renormalised
    to sum to 1."""
    folded = {code: probabilities.get(code, 0.0) for code in configured}
    counted: set[str] = set(configured)
    for code in configured:
        for relative in CLOSE_RELATIVES.get(code, ()):
            if relative not in counted:
                counted.add(relative)
                folded[code] += probabilities.get(relative, 0.0)
    residual_to = next((code for code in UNDER_REPRESENTED if code in configured), None)
    if residual_to is not None:
        folded[residual_to] += sum(
            value for code, value in probabilities.items() if code not in counted
        )
    total = sum(folded.values())
    if total <= 0:
        return {code: 1.0 / len(configured) for code in configured}
    return {code: value / total for code, value in folded.items()}
