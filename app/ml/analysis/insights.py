"""Issues, actions, key points and the extractive summary, built from redacted segments."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from app.core.enums import Sentiment, SpeakerRole
from app.ml.analysis import text as tx
from app.ml.analysis.catalog import Catalog
from app.ml.analysis.language import EN_WORDS, RU_WORDS, UZ_WORDS
from app.ml.analysis.phrases import PhraseIndex
from app.ml.types import Action, Intent, Issue, Keypoint, TranscriptSegment

_COMPLAINT_CUES = PhraseIndex(
    (cue, "complaint")
    for cue in (
        "complain*", "unacceptable", "ridiculous", "disappointed", "not happy", "fed up",
        "жалоб*", "пожаловаться", "недоволен", "недовольна", "безобраз*", "возмут*", "надоел*",
        "сколько можно", "shikoyat*", "norozi*", "jonimga tegdi", "bema'ni", "uyat",
    )
)  # fmt: skip
_LABELS = {
    "en": {"AGENT": "Agent", "CUSTOMER": "Customer", "UNKNOWN": "Speaker", "topics": "Topics",
           "complaint": "Customer complaint"},
    "ru": {"AGENT": "Оператор", "CUSTOMER": "Клиент", "UNKNOWN": "Собеседник", "topics": "Темы",
           "complaint": "Жалоба клиента"},
    "uz": {"AGENT": "Operator", "CUSTOMER": "Mijoz", "UNKNOWN": "Suhbatdosh", "topics": "Mavzular",
           "complaint": "Mijoz shikoyati"},
}  # fmt: skip
_STOPWORDS = EN_WORDS | RU_WORDS | UZ_WORDS
_MAX_ISSUES = 5
_DESCRIPTION_CHARS = 300


def label(key: str, language: str) -> str:
    return _LABELS.get(language, _LABELS["en"])[key]


def _complains(segment: TranscriptSegment) -> bool:
    return any(_COMPLAINT_CUES.find(words) for words in tx.token_views(segment.text))


def _clip(text: str) -> str:
    return text if len(text) <= _DESCRIPTION_CHARS else text[: _DESCRIPTION_CHARS - 1] + "…"


def find_issues(
    segments: Sequence[TranscriptSegment],
    intents: Sequence[Intent],
    catalog: Catalog,
    language: str,
) -> list[Issue]:
    """Customer complaints: negative customer turns or complaint phrases, one issue per intent
    they support (titled by it), the rest gathered as a general complaint."""
    has_customer = any(segment.role is SpeakerRole.CUSTOMER for segment in segments)
    speaker_roles = {SpeakerRole.CUSTOMER} if has_customer else {SpeakerRole.UNKNOWN}
    complaints = [
        i
        for i, segment in enumerate(segments)
        if segment.role in speaker_roles
        and (segment.sentiment is Sentiment.NEGATIVE or _complains(segment))
    ]
    groups: dict[str, list[int]] = {}
    for i in complaints:
        owner = next((intent.name for intent in intents if i in intent.evidence), "")
        groups.setdefault(owner, []).append(i)
    issues: list[Issue] = []
    for owner, indices in groups.items():
        spec = catalog.intent(owner) if owner else None
        title = spec.title_in(language) if spec else label("complaint", language)
        worst = min(indices, key=lambda i: segments[i].sentiment_score or 0.0)
        issues.append(
            Issue(title=title, description=_clip(segments[worst].text), evidence=tuple(indices))
        )
    return issues[:_MAX_ISSUES]


def derive_actions(
    intents: Sequence[Intent],
    issues: Sequence[Issue],
    call_sentiment: Sentiment,
    catalog: Catalog,
    language: str,
) -> list[Action]:
    """Follow-ups from the catalogue's rule table, in rule order, each once."""
    names = {intent.name for intent in intents}
    actions: list[Action] = []
    for rule in catalog.actions:
        condition = rule.when
        if (
            (condition.intent is not None and condition.intent in names)
            or (condition.issue is not None and condition.issue == bool(issues))
            or (condition.sentiment is not None and condition.sentiment == call_sentiment)
        ):
            action = Action(description=rule.text_in(language))
            if action not in actions:
                actions.append(action)
    return actions


def _bag(sentence: str) -> Counter[str]:
    # Five-letter prefixes stand in for stems across three inflecting languages.
    return Counter(
        word[:5] for word in tx.uz_tokens(sentence) if len(word) > 2 and word not in _STOPWORDS
    )


def _cosine(a: Counter[str], b: Counter[str]) -> float:
    dot = sum(count * b[word] for word, count in a.items())
    norm = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norm if norm else 0.0


def central_sentences(
    segments: Sequence[TranscriptSegment], salient: set[int]
) -> list[tuple[float, int, str]]:
    """(score, segment index, sentence), best first: sentences closest to the call's centroid,
    favouring the customer and turns that carry an intent, issue or entity."""
    candidates: list[tuple[int, str, Counter[str]]] = []
    for index, segment in enumerate(segments):
        for sentence in tx.sentences(segment.text):
            if tx.word_count(sentence) >= 4:
                candidates.append((index, sentence, _bag(sentence)))
    centroid: Counter[str] = Counter()
    for _, _, bag in candidates:
        centroid.update(bag)
    scored: list[tuple[float, int, str]] = []
    for index, sentence, bag in candidates:
        score = _cosine(bag, centroid)
        if index in salient:
            score *= 1.5
        if segments[index].role is SpeakerRole.CUSTOMER:
            score *= 1.2
        scored.append((score, index, sentence))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return scored


def keypoints_and_summary(
    segments: Sequence[TranscriptSegment],
    intents: Sequence[Intent],
    catalog: Catalog,
    salient: set[int],
    language: str,
    *,
    max_keypoints: int,
    summary_sentences: int,
) -> tuple[list[Keypoint], str]:
    ranked = central_sentences(segments, salient)
    keypoints = [
        Keypoint(text=sentence, segment_index=index)
        for _, index, sentence in sorted(ranked[:max_keypoints], key=lambda item: item[1])
    ]
    chosen = sorted(ranked[:summary_sentences], key=lambda item: item[1])
    parts: list[str] = []
    titles = [spec.title_in(language) for i in intents if (spec := catalog.intent(i.name))]
    if titles:
        parts.append(f"{label('topics', language)}: {', '.join(titles)}.")
    for _, index, sentence in chosen:
        parts.append(f"{label(segments[index].role.value, language)}: {sentence}")
    return keypoints, " ".join(parts)


def segment_weight(segment: TranscriptSegment) -> float:
    """How much a turn counts in the call's sentiment: customers speak for the call, agents'
    courtesy ("thank you for calling") says little about it."""
    role_weight = 0.3 if segment.role is SpeakerRole.AGENT else 1.0
    return role_weight * math.sqrt(max(1, tx.word_count(segment.text)))
