"""The offline, deterministic analyzer (ANALYSIS_BACKEND=local, the default)."""

from __future__ import annotations

from app.ml.analysis import sentiment as polarity
from app.ml.analysis.annotate import metrics_for, prepare
from app.ml.analysis.base import Analyzer, RoleOverrides
from app.ml.analysis.catalog import Catalog, load_catalog
from app.ml.analysis.insights import derive_actions, find_issues, keypoints_and_summary
from app.ml.analysis.intents import IntentMatcher, IntentTurn
from app.ml.analysis.settings import AnalysisSettings
from app.ml.types import (
    AnalysisResult,
    CallInsight,
    ProgressCallback,
    Stage,
    Transcript,
)

_STEPS = 6


class LocalAnalyzer(Analyzer):
    """Stateless per call; holds the catalogue and its matcher (models are process-wide)."""

    def __init__(self, settings: AnalysisSettings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or load_catalog(settings.intent_catalog)
        self.matcher = IntentMatcher(self.catalog, embeddings=settings.intent_embeddings)

    def analyze_speech(
        self, transcript: Transcript, role_overrides: RoleOverrides, hook: ProgressCallback
    ) -> CallInsight:
        settings = self.settings
        output_language = settings.analysis_output_language
        hook(Stage.ANALYZING, 0, _STEPS)
        prepared = prepare(transcript, settings, role_overrides, person_names=settings.person_names)
        annotated, entities = prepared.annotated, prepared.entities
        hook(Stage.ANALYZING, 2, _STEPS)

        # Intents read the unredacted turns (a card number says nothing about intent) ...
        intents = self.matcher.match(
            [IntentTurn(s.text, s.language or "", s.role) for s in annotated.segments],
            settings.intent_min_confidence,
        )
        hook(Stage.ANALYZING, 3, _STEPS)

        # ... everything below reads redacted text only: no summary or issue can leak PII.
        shown = prepared.shown
        call_sentiment = polarity.label(annotated.sentiment_score)
        issues = find_issues(shown, intents, self.catalog, output_language)
        actions = derive_actions(intents, issues, call_sentiment, self.catalog, output_language)
        salient = {i for intent in intents for i in intent.evidence}
        salient |= {i for issue in issues for i in issue.evidence}
        salient |= {e.segment_index for e in entities if e.segment_index is not None}
        keypoints, summary = keypoints_and_summary(
            shown,
            intents,
            self.catalog,
            salient,
            output_language,
            max_keypoints=settings.keypoints_max,
            summary_sentences=settings.summary_sentences,
        )
        hook(Stage.ANALYZING, 5, _STEPS)

        metrics = metrics_for(transcript, shown, annotated.roles, settings)
        hook(Stage.ANALYZING, _STEPS, _STEPS)
        return CallInsight(
            segments=shown,
            analysis=AnalysisResult(
                language=annotated.language,
                summary=summary,
                sentiment=call_sentiment,
                sentiment_score=annotated.sentiment_score,
                intents=intents,
                entities=entities,
                issues=issues,
                actions=actions,
                keypoints=keypoints,
            ),
            metrics=metrics,
        )
