"""The transcript masking and the audio masking find the same things: numbers said as words,
passport numbers and security codes are masked in the text and the words too, with
punctuation kept and ordinary numbers left alone."""

from __future__ import annotations

from app.ml.analysis.redaction import redact_text, redact_words
from app.ml.types import Word


def words_of(text: str) -> list[Word]:
    return [Word(w, i * 0.5, i * 0.5 + 0.4, 0.9) for i, w in enumerate(text.split())]


def test_a_card_read_as_words_is_masked_in_text_and_words() -> None:
    text = (
        "My card is four five three two, zero one five one, one two eight three, "
        "zero three six six."
    )
    assert redact_text(text) == "My card is [CARD]."
    out = redact_words(words_of(text))
    assert [w.text for w in out] == ["My", "card", "is", "[CARD]"]
    assert (out[3].start_s, out[3].end_s) == (1.5, 9.4)


def test_russian_and_uzbek_numbers_passports_and_codes() -> None:
    russian = (
        "номер карты восемь шесть ноль ноль один два три четыре пять шесть семь восемь девять "
        "ноль один два, спасибо"
    )
    assert redact_text(russian) == "номер карты [CARD], спасибо"
    uzbek = (
        "karta sakkiz olti nol nol bir ikki uch to'rt besh olti yetti sakkiz to'qqiz nol bir ikki"
    )
    assert redact_text(uzbek) == "karta [CARD]"
    assert redact_text("pasport seriyasi AA 1234567 edi") == "pasport seriyasi [PASSPORT] edi"
    assert redact_text("card 4532 0151 1283 0366 and the code 737.") == (
        "card ****0366 and the code [CVV]."
    )


def test_digits_keep_their_own_masks_and_other_numbers_stay() -> None:
    text = "Karta 8600 1234 5678 9012, telefon +998 90 123 45 67, pochta ali@mail.uz"
    assert redact_text(text) == "Karta ****9012, telefon [PHONE], pochta [EMAIL]"
    for plain in ("I paid 150000 sum on 12 March", "order number 1234567890 please", "in two days"):
        assert redact_text(plain) == plain
        assert [w.text for w in redact_words(words_of(plain))] == plain.split()
