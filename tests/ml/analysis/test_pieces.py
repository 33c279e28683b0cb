"""The local analyzer's pieces on real utterances in Uzbek (both scripts), Russian and English."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.enums import Sentiment, SpeakerRole
from app.ml.analysis import entities as ent
from app.ml.analysis.catalog import load_catalog
from app.ml.analysis.errors import AnalysisError
from app.ml.analysis.intents import IntentMatcher, IntentTurn
from app.ml.analysis.language import detect_call, detect_segment, settle_segments
from app.ml.analysis.metrics import compute_metrics
from app.ml.analysis.redaction import redact_text, redact_words
from app.ml.analysis.roles import assign_roles
from app.ml.analysis.sentiment import label, score_text
from app.ml.types import Transcript, TranscriptSegment, Word


@pytest.mark.parametrize(
    ("text", "code", "script"),
    [
        ("Assalomu alaykum, sizga qanday yordam bera olaman?", "uz", "latin"),
        ("Kartamdan pul yechildi, lekin to'lov o'tmadi", "uz", "latin"),
        ("Ассалому алайкум, сизга қандай ёрдам бера оламан?", "uz", "cyrillic"),
        ("Менинг картамдан пул ечилди", "uz", "cyrillic"),
        ("Здравствуйте, чем могу помочь?", "ru", "cyrillic"),
        ("У меня дважды списали деньги с карты", "ru", "cyrillic"),
        ("Hello, thank you for calling, how can I help you?", "en", "latin"),
        ("My internet is not working since Monday", "en", "latin"),
    ],
)
def test_language_per_segment(text: str, code: str, script: str) -> None:
    guess = detect_segment(text)
    assert (guess.code, guess.script) == (code, script)


def test_language_per_call_settles_short_turns() -> None:
    guesses = [detect_segment(t) for t in ("Internet uch kundan beri ishlamayapti", "ok", "Да")]
    call = detect_call(guesses)
    assert call == "uz"
    # "ok" is Latin and weak, so it takes the call's language; "Да" is Cyrillic, and Uzbek is
    # written in Cyrillic too, so it may as well; nothing Latin becomes Russian.
    assert settle_segments(guesses, call)[:2] == ["uz", "uz"]
    assert detect_call([detect_segment("…"), detect_segment("123")]) == "und"


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("Спасибо большое, вы мне очень помогли!", "ru", Sentiment.POSITIVE),
        ("Это безобразие, деньги списали дважды", "ru", Sentiment.NEGATIVE),
        ("Не очень хорошо", "ru", Sentiment.NEGATIVE),
        ("Подождите, я проверю номер договора", "ru", Sentiment.NEUTRAL),
        ("Katta rahmat, juda yaxshi xizmat", "uz", Sentiment.POSITIVE),
        ("Internet uch kundan beri ishlamayapti, juda yomon", "uz", Sentiment.NEGATIVE),
        ("Бу хизмат яхши эмас", "uz", Sentiment.NEGATIVE),
        ("This is terrible, I was charged twice", "en", Sentiment.NEGATIVE),
        ("Thanks a lot, great help", "en", Sentiment.POSITIVE),
    ],
)
def test_sentiment(text: str, language: str, expected: Sentiment) -> None:
    score = score_text(text, language)
    assert -1.0 <= score <= 1.0
    assert label(score) is expected


def test_pattern_entities_in_three_languages() -> None:
    uz = ent.pattern_spans(
        "Kartamdan 150 000 so'm yechildi, 12.03.2025 kuni soat 14:30 da, buyurtma raqami A-12345"
    )
    assert [(s.type, s.value) for s in uz] == [
        (ent.MONEY, "150000 UZS"),
        (ent.DATE, "12.03.2025"),
        (ent.TIME, "soat 14:30 da"),
        (ent.ORDER, "A-12345"),
    ]
    ru = ent.pattern_spans(
        "Лицевой счёт 123456789, оплатил 500 рублей вчера, звоните 8 (495) 123-45-67"
    )
    assert {(s.type, s.value) for s in ru} == {
        (ent.ACCOUNT, "123456789"),
        (ent.MONEY, "500 RUB"),
        (ent.DATE, "вчера"),
        (ent.PHONE, "+74951234567"),
    }
    en = ent.pattern_spans(
        "Card 8600 1234 5678 9012, $49.99, call +1 415 555 2671, mail A.B@Example.com"
    )
    assert {(s.type, s.value) for s in en} == {
        (ent.CARD, "8600123456789012"),
        (ent.MONEY, "49.99 USD"),
        (ent.PHONE, "+14155552671"),
        (ent.EMAIL, "a.b@example.com"),
    }
    assert [s.value for s in ent.pattern_spans("telefonim 90 123 45 67, 2 mln сум")] == [
        "+998901234567",
        "2000000 UZS",
    ]


def test_introduced_names() -> None:
    assert [s.value for s in ent.introduced_names("Hello, my name is John Smith")] == ["John Smith"]
    assert [s.value for s in ent.introduced_names("Assalomu alaykum, ismim Dilnoza")] == ["Dilnoza"]
    assert ent.introduced_names("this is terrible") == []


def test_redaction_of_text_and_words() -> None:
    text = "Karta 8600 1234 5678 9012, telefon +998 90 123 45 67, pochta ali@mail.uz"
    redacted = redact_text(text)
    assert redacted == "Karta ****9012, telefon [PHONE], pochta [EMAIL]"
    words = [Word(w, float(i), float(i) + 0.5, 0.9) for i, w in enumerate(text.split())]
    out = redact_words(words)
    joined = " ".join(w.text for w in out)
    assert "1234" not in joined and "123 45" not in joined and "ali@" not in joined
    card = (
        next(w for w in out if w.text == "****9012,")
        if False
        else next(w for w in out if w.text.startswith("****"))
    )
    assert (card.start_s, card.end_s) == (1.0, 4.5)  # four groups merged into one masked word


def _segment(
    speaker: str, start: float, end: float, text: str, channel: int | None = None
) -> TranscriptSegment:
    return TranscriptSegment(speaker=speaker, start_s=start, end_s=end, text=text, channel=channel)


def test_roles_from_content_channel_and_overrides() -> None:
    mono = Transcript(
        segments=[
            _segment("S1", 0, 2, "Я хочу узнать баланс"),
            _segment("S0", 2, 4, "Здравствуйте, чем могу помочь?"),
        ],
        duration_s=4,
    )
    assert assign_roles(mono, agent_channel=0) == {
        "S1": SpeakerRole.CUSTOMER,
        "S0": SpeakerRole.AGENT,
    }
    unknown = Transcript(
        segments=[_segment("S0", 0, 1, "Ha"), _segment("S1", 1, 2, "Yo'q")], duration_s=2
    )
    assert set(assign_roles(unknown, agent_channel=0).values()) == {SpeakerRole.UNKNOWN}
    stereo = Transcript(
        segments=[_segment("L", 0, 1, "Hello"), _segment("R", 1, 2, "How can I help?")],
        duration_s=2,
        channels=2,
        speaker_channels={"L": 0, "R": 1},
    )
    assert assign_roles(stereo, agent_channel=0) == {
        "L": SpeakerRole.AGENT,
        "R": SpeakerRole.CUSTOMER,
    }
    overridden = assign_roles(stereo, agent_channel=0, overrides={"L": SpeakerRole.CUSTOMER})
    assert overridden["L"] is SpeakerRole.CUSTOMER


def test_metrics() -> None:
    segments = [
        _segment("A", 0.0, 4.0, "one two three four five six seven eight"),
        _segment("B", 3.0, 6.0, "nine ten eleven"),  # starts 1 s before A ends: interruption
        _segment("A", 5.8, 7.0, "ok"),  # 0.2 s overlap: below the 0.5 s threshold
        _segment("A", 7.0, 9.0, "fine then"),
    ]
    metrics = compute_metrics(
        segments,
        12.0,
        {"A": SpeakerRole.AGENT, "B": SpeakerRole.CUSTOMER},
        interruption_threshold_s=0.5,
    )
    assert metrics.duration_s == 12.0
    assert metrics.talk_s == 9.0
    assert metrics.silence_s == 3.0
    assert metrics.overlap_s == pytest.approx(1.2)
    assert metrics.interruptions == 1
    a, b = metrics.speakers
    assert (a.speaker, a.turns, a.talk_s, a.longest_monologue_s) == ("A", 2, 7.2, 4.0)
    assert (b.turns, b.talk_s, b.words_per_minute) == (1, 3.0, 60.0)
    assert a.talk_ratio + b.talk_ratio == pytest.approx(1.0)


def test_intent_phrases_in_three_languages() -> None:
    matcher = IntentMatcher(load_catalog(), embeddings=False)
    turns = [
        IntentTurn("Мне дважды списали деньги, верните деньги", "ru", SpeakerRole.CUSTOMER),
        IntentTurn("Kartamni yo'qotib qo'ydim, bloklab bering", "uz", SpeakerRole.CUSTOMER),
        IntentTurn("Ҳисобимда қанча пул қолди?", "uz", SpeakerRole.CUSTOMER),
        IntentTurn("I can't log in to the app", "en", SpeakerRole.CUSTOMER),
        IntentTurn("I can process a refund for you", "en", SpeakerRole.AGENT),
    ]
    found = {i.name: i for i in matcher.match(turns, 0.5)}
    assert set(found) == {
        "payment_problem",
        "refund_request",
        "card_block",
        "balance_inquiry",
        "account_access",
    }
    assert found["card_block"].evidence == (1,)
    assert found["refund_request"].evidence == (0, 4)
    assert found["refund_request"].confidence > found["card_block"].confidence


def test_operator_catalogue_extends_and_replaces(tmp_path: Path) -> None:
    extra = tmp_path / "catalog.yaml"
    extra.write_text(
        "intents:\n"
        "  - name: insurance_claim\n"
        "    title: {en: Insurance claim}\n"
        "    phrases: {ru: [страхов* случа*], uz: [sug'urta*]}\n"
        "actions:\n"
        "  - when: {intent: insurance_claim}\n"
        "    text: {en: Open a claim}\n",
        encoding="utf-8",
    )
    catalog = load_catalog(extra)
    assert catalog.intent("insurance_claim") is not None
    assert catalog.intent("refund_request") is not None
    matcher = IntentMatcher(catalog, embeddings=False)
    found = matcher.match(
        [IntentTurn("Sug'urta bo'yicha murojaat", "uz", SpeakerRole.CUSTOMER)], 0.5
    )
    assert [i.name for i in found] == ["insurance_claim"]
    broken = tmp_path / "broken.yaml"
    broken.write_text("intents:\n  - name: Bad Name\n", encoding="utf-8")
    with pytest.raises(AnalysisError, match="invalid"):
        load_catalog(broken)
