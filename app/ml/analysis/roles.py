"""Speaker roles: by channel for stereo recordings, otherwise by what each speaker says."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from app.core.enums import SpeakerRole
from app.ml.analysis import text as tx
from app.ml.analysis.phrases import PhraseIndex
from app.ml.types import Transcript, TranscriptSegment

_AGENT_CUES = [
    # English
    "how can i help", "how may i help", "how can i assist", "thank you for calling",
    "thanks for calling", "welcome to", "is there anything else", "one moment please",
    "let me check", "i can help you with", "have a nice day", "calling from",
    # Russian
    "чем могу помочь", "чем я могу помочь", "чем вам помочь", "спасибо за обращение",
    "спасибо за звонок", "оператор*", "слушаю вас", "чем-то ещё помочь", "чем-то еще помочь",
    "одну минуту", "минуточку", "сейчас проверю", "давайте проверим", "хорошего дня",
    "вас беспокоит", "служба поддержки", "контакт-центр", "колл-центр",
    # Uzbek (Latin; Cyrillic is transliterated before matching)
    "qanday yordam", "nima yordam", "yordam bera olaman", "qo'ng'iroq uchun rahmat",
    "murojaat uchun rahmat", "xush kelibsiz", "eshitaman", "tinglayman", "operator*",
    "bir daqiqa", "tekshirib ko'raman", "yana savollaringiz", "yana savolingiz",
    "qo'llab-quvvatlash", "aloqa markazi", "kuningiz xayrli",
]  # fmt: skip
_CUSTOMER_CUES = [
    "i want", "i would like", "my card", "my account", "i was charged", "i have a problem",
    "у меня", "я хочу", "мне нужно", "моя карта", "мой заказ", "я оплатил*", "я хотел*",
    "menda", "mening", "men ... moqchiman", "kartam*", "hisobim*", "buyurtmam*", "muammom",
]  # fmt: skip
_INDEX = PhraseIndex(
    [(cue, "agent") for cue in _AGENT_CUES]
    + [(cue, "customer") for cue in _CUSTOMER_CUES if "..." not in cue]
)


def _speaker_channels(transcript: Transcript) -> dict[str, int]:
    channels = dict(transcript.speaker_channels)
    for segment in transcript.segments:
        if segment.channel is not None:
            channels.setdefault(segment.speaker, segment.channel)
    return channels


def by_channel(transcript: Transcript, agent_channel: int) -> dict[str, SpeakerRole] | None:
    """Roles of a stereo call (agent on `agent_channel`), or None if the call is not stereo."""
    channels = _speaker_channels(transcript)
    if len(set(channels.values())) < 2:
        return None
    return {
        speaker: SpeakerRole.AGENT if channel == agent_channel else SpeakerRole.CUSTOMER
        for speaker, channel in channels.items()
    }


def by_content(segments: Sequence[TranscriptSegment]) -> dict[str, SpeakerRole]:
    """The speaker who greets and offers help is the agent; the others are customers.
    With no such evidence every speaker stays UNKNOWN: a guess would mislead the metrics."""
    speakers = list(dict.fromkeys(segment.speaker for segment in segments))
    score: dict[str, float] = defaultdict(float)
    for position, segment in enumerate(segments):
        hits = [
            payload for words in tx.token_views(segment.text) for payload, _ in _INDEX.find(words)
        ]
        for payload in hits:
            if payload == "agent":
                # Greetings in the opening turns are the strongest tell.
                score[segment.speaker] += 2.0 if position < 3 else 1.0
            else:
                score[segment.speaker] -= 0.5
    if not speakers:
        return {}
    best = max(speakers, key=lambda speaker: score[speaker])
    if score[best] > 0:
        return {
            speaker: SpeakerRole.AGENT if speaker == best else SpeakerRole.CUSTOMER
            for speaker in speakers
        }
    customers = [speaker for speaker in speakers if score[speaker] < 0]
    if len(speakers) == 2 and len(customers) == 1:
        return {
            speaker: SpeakerRole.CUSTOMER if speaker == customers[0] else SpeakerRole.AGENT
            for speaker in speakers
        }
    return dict.fromkeys(speakers, SpeakerRole.UNKNOWN)


def assign_roles(
    transcript: Transcript,
    *,
    agent_channel: int,
    overrides: Mapping[str, SpeakerRole] | None = None,
) -> dict[str, SpeakerRole]:
    """Speaker label -> role, with the caller's overrides winning."""
    roles = by_channel(transcript, agent_channel) or by_content(transcript.segments)
    for segment in transcript.segments:
        roles.setdefault(segment.speaker, SpeakerRole.UNKNOWN)
    if overrides:
        roles.update({speaker: SpeakerRole(role) for speaker, role in overrides.items()})
    return roles
