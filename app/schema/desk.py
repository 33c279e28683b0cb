"""GraphQL types of the supervisor's desk: categories, scorecards and their per-call results,
rule re-evaluation runs, call statistics, sentiment trend, and webhooks."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from app.core.enums import Sentiment as SentimentModel
from app.core.enums import SpeakerRole as SpeakerRoleModel
from app.core.ids import to_global_id
from app.db.models import CallCategory as CallCategoryModel
from app.db.models import CallScorecard as CallScorecardModel
from app.db.models import Category as CategoryModel
from app.db.models import DeliveryStatus as DeliveryStatusModel
from app.db.models import EvaluationStatus as EvaluationStatusModel
from app.db.models import RuleEvaluation as RuleEvaluationModel
from app.db.models import Scorecard as ScorecardModel
from app.db.models import WebhookAttempt as WebhookAttemptModel
from app.db.models import WebhookDelivery as WebhookDeliveryModel
from app.db.models import WebhookEndpoint as WebhookEndpointModel
from app.db.models import WebhookEvent as WebhookEventModel
from app.schema.context import Info
from app.schema.rows import from_row
from app.schema.user import User
from app.services import webhooks
from app.services.stats import StatsGroup as StatsGroupModel
from app.services.stats import StatsRow

EvaluationStatus = strawberry.enum(EvaluationStatusModel, name="RuleEvaluationStatus")
WebhookEvent = strawberry.enum(WebhookEventModel, name="WebhookEvent")
DeliveryStatus = strawberry.enum(DeliveryStatusModel, name="WebhookDeliveryStatus")
CallStatsGroup = strawberry.enum(StatsGroupModel, name="CallStatsGroup")
_Sentiment = strawberry.enum(SentimentModel, name="Sentiment")
_SpeakerRole = strawberry.enum(SpeakerRoleModel, name="SpeakerRole")


@strawberry.type(description="Why a rule matched: a turn and the words, or what was observed.")
class RuleEvidence:
    condition: int = strawberry.field(description="Index of the condition in its rule.")
    segment_index: int | None = strawberry.field(
        description="Index into Call.segments; null for call-level observations."
    )
    text: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RuleEvidence:
        return cls(
            condition=int(data["condition"]),
            segment_index=data.get("segmentIndex"),
            text=str(data["text"]),
        )


@strawberry.type
class Category:
    id: strawberry.ID
    name: str
    description: str | None
    rule: JSON = strawberry.field(
        description="{match: ALL|ANY, conditions: [...]}; see docs/desk.md for the rule language."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: CategoryModel) -> Category:
        return from_row(
            cls, row, id=strawberry.ID(to_global_id("Category", row.id)), rule=cast(JSON, row.rule)
        )


@strawberry.type
class ScorecardItem:
    name: str
    weight: float
    should_match: bool
    rule: JSON


@strawberry.type
class Scorecard:
    id: strawberry.ID
    name: str
    description: str | None
    items: list[ScorecardItem]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: ScorecardModel) -> Scorecard:
        return from_row(
            cls,
            row,
            id=strawberry.ID(to_global_id("Scorecard", row.id)),
            items=[
                ScorecardItem(
                    name=item["name"],
                    weight=item["weight"],
                    should_match=item["shouldMatch"],
                    rule=cast(JSON, item["rule"]),
                )
                for item in row.items
            ],
        )


@strawberry.type(description="A category a finished call matched.")
class CallCategory:
    category: Category
    evidence: list[RuleEvidence]

    @classmethod
    def from_row(cls, tag: CallCategoryModel, category: CategoryModel) -> CallCategory:
        return cls(
            category=Category.from_row(category),
            evidence=[RuleEvidence.from_json(item) for item in tag.evidence],
        )


@strawberry.type
class ScorecardItemResult:
    name: str
    weight: float
    passed: bool
    evidence: list[RuleEvidence]


@strawberry.type(description="A finished call scored against a scorecard.")
class CallScorecard:
    scorecard: Scorecard
    score: float = strawberry.field(description="Weighted share of items passed, 0..1.")
    items: list[ScorecardItemResult]

    @classmethod
    def from_row(cls, result: CallScorecardModel, scorecard: ScorecardModel) -> CallScorecard:
        return cls(
            scorecard=Scorecard.from_row(scorecard),
            score=result.score,
            items=[
                ScorecardItemResult(
                    name=item["name"],
                    weight=item["weight"],
                    passed=item["passed"],
                    evidence=[RuleEvidence.from_json(e) for e in item["evidence"]],
                )
                for item in result.items
            ],
        )


@strawberry.type(description="Re-evaluation of every finished call after a rule change.")
class RuleEvaluation:
    id: strawberry.ID
    status: EvaluationStatus  # type: ignore[valid-type]
    reason: str
    total: int
    processed: int
    progress: float = strawberry.field(description="0..1")
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: RuleEvaluationModel) -> RuleEvaluation:
        progress = 1.0 if row.total == 0 else min(1.0, row.processed / row.total)
        if row.status is EvaluationStatusModel.SUCCESS:
            progress = 1.0
        return from_row(
            cls, row, id=strawberry.ID(to_global_id("RuleEvaluation", row.id)), progress=progress
        )


@strawberry.type
class CategoryPayload:
    category: Category
    evaluation: RuleEvaluation

    @classmethod
    def of(cls, saved: tuple[CategoryModel, RuleEvaluationModel]) -> CategoryPayload:
        category, run = saved
        return cls(category=Category.from_row(category), evaluation=RuleEvaluation.from_row(run))


@strawberry.type
class ScorecardPayload:
    scorecard: Scorecard
    evaluation: RuleEvaluation

    @classmethod
    def of(cls, saved: tuple[ScorecardModel, RuleEvaluationModel]) -> ScorecardPayload:
        scorecard, run = saved
        return cls(scorecard=Scorecard.from_row(scorecard), evaluation=RuleEvaluation.from_row(run))


@strawberry.input(description="rule: {match: ALL|ANY, conditions: [...]}, validated.")
class CategoryInput:
    name: str
    rule: JSON
    description: str | None = None


@strawberry.input(
    description="items: [{name, weight, shouldMatch, rule}], each rule as in CategoryInput."
)
class ScorecardInput:
    name: str
    items: JSON
    description: str | None = None


@strawberry.type(description="One turn-weighted point of the sentiment trend.")
class SentimentTrendPoint:
    role: _SpeakerRole  # type: ignore[valid-type]
    quarter: int = strawberry.field(description="1-4: the quarter of the call's duration.")
    score: float = strawberry.field(description="-1..1")
    sentiment: _Sentiment  # type: ignore[valid-type]
    turns: int


# --- stats -------------------------------------------------------------------------------------


@strawberry.type
class NameCount:
    name: str
    count: int


@strawberry.type(description="Figures for one group of finished calls.")
class CallStats:
    day: date | None = strawberry.field(description="With DAY: the UTC day.")
    week: date | None = strawberry.field(description="With WEEK: the Monday of the ISO week.")
    language: str | None
    sentiment: _Sentiment | None  # type: ignore[valid-type]
    calls: int
    total_duration_seconds: float
    mean_duration_seconds: float | None
    mean_sentiment_score: float | None
    negative_share: float | None = strawberry.field(description="0..1")
    mean_agent_talk_ratio: float | None
    mean_silence_share: float | None = strawberry.field(description="Silence / duration, 0..1.")
    interruptions_per_call: float | None
    mean_scorecard_score: float | None
    top_intents: list[NameCount]
    top_issues: list[NameCount]
    _row: strawberry.Private[StatsRow]

    # With AGENT: the agent.
    @strawberry.field
    async def agent(self, info: Info) -> User | None:
        if self._row.agent_id is None:
            return None
        user = await info.context.loaders.user_by_id.load(self._row.agent_id)
        return User.from_row(user) if user is not None else None

    # With CATEGORY: the category; null for the calls that matched none.
    @strawberry.field
    async def category(self, info: Info) -> Category | None:
        if self._row.category_id is None:
            return None
        row = await info.context.loaders.category_by_id.load(self._row.category_id)
        return Category.from_row(row) if row is not None else None

    @classmethod
    def from_row(cls, row: StatsRow) -> CallStats:
        return from_row(
            cls,
            row,
            top_intents=[NameCount(name=i.name, count=i.count) for i in row.top_intents],
            top_issues=[NameCount(name=i.name, count=i.count) for i in row.top_issues],
            _row=row,
        )


# --- webhooks ----------------------------------------------------------------------------------


@strawberry.type
class WebhookEndpoint:
    id: strawberry.ID
    url: str
    description: str | None
    events: list[WebhookEvent]  # type: ignore[valid-type]
    is_active: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: WebhookEndpointModel) -> WebhookEndpoint:
        return from_row(
            cls,
            row,
            id=strawberry.ID(to_global_id("WebhookEndpoint", row.id)),
            events=list(row.events),
        )


@strawberry.type(description="The endpoint, and its signing secret: shown this once only.")
class WebhookEndpointPayload:
    endpoint: WebhookEndpoint
    secret: str

    # The secret as Standard Webhooks receivers take it (whsec_ + base64); requests carry
    # webhook-id, webhook-timestamp and webhook-signature too.
    @strawberry.field
    def standard_webhooks_secret(self) -> str:
        return webhooks.standard_webhooks_secret(self.secret)


@strawberry.input
class WebhookEndpointInput:
    url: str
    events: list[WebhookEvent]  # type: ignore[valid-type]
    secret: str | None = strawberry.field(
        default=None, description="16-200 characters; generated when omitted."
    )
    description: str | None = None


@strawberry.type
class WebhookAttempt:
    number: int
    status_code: int | None = strawberry.field(description="Null when no answer came.")
    error: str | None
    duration_ms: int
    at: datetime

    @classmethod
    def from_row(cls, row: WebhookAttemptModel) -> WebhookAttempt:
        return from_row(cls, row, at=row.created_at)


@strawberry.type
class WebhookDelivery:
    id: strawberry.ID
    endpoint_id: strawberry.ID
    call_id: strawberry.ID
    event: WebhookEvent  # type: ignore[valid-type]
    status: DeliveryStatus  # type: ignore[valid-type]
    body: str = strawberry.field(description="The exact JSON sent (and signed).")
    attempts: list[WebhookAttempt]
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(
        cls, row: WebhookDeliveryModel, attempts: list[WebhookAttemptModel]
    ) -> WebhookDelivery:
        return from_row(
            cls,
            row,
            id=strawberry.ID(to_global_id("WebhookDelivery", row.id)),
            endpoint_id=strawberry.ID(to_global_id("WebhookEndpoint", row.endpoint_id)),
            call_id=strawberry.ID(to_global_id("Call", row.call_id)),
            attempts=[WebhookAttempt.from_row(a) for a in attempts],
        )


@strawberry.type
class WebhookDeliveryEdge:
    cursor: str
    node: WebhookDelivery


@strawberry.type
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge]
    has_next_page: bool
    end_cursor: str | None
