"""All ORM models; importing this package registers every table on `Base.metadata`."""

from app.db.models.analysis import (
    AnalysisAction,
    AnalysisEntity,
    AnalysisIntent,
    AnalysisIssue,
    AnalysisKeypoint,
    CallAnalysis,
)
from app.db.models.audit import AuditEvent
from app.db.models.call import Call, CallStatus, PipelineStage
from app.db.models.desk import (
    CallCategory,
    CallScorecard,
    Category,
    DeliveryStatus,
    EvaluationStatus,
    RuleEvaluation,
    Scorecard,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from app.db.models.metrics import CallMetrics, CallSpeaker
from app.db.models.retention import RetentionPolicy
from app.db.models.team import Team, team_agents, team_supervisors
from app.db.models.transcript import Segment
from app.db.models.user import Role, User
from app.db.models.voiceprint import SampleKind, Voiceprint, VoiceprintSample

__all__ = [
    "AnalysisAction",
    "AnalysisEntity",
    "AnalysisIntent",
    "AnalysisIssue",
    "AnalysisKeypoint",
    "AuditEvent",
    "Call",
    "CallAnalysis",
    "CallCategory",
    "CallMetrics",
    "CallScorecard",
    "CallSpeaker",
    "CallStatus",
    "Category",
    "DeliveryStatus",
    "EvaluationStatus",
    "PipelineStage",
    "RetentionPolicy",
    "Role",
    "RuleEvaluation",
    "SampleKind",
    "Scorecard",
    "Segment",
    "Team",
    "User",
    "Voiceprint",
    "VoiceprintSample",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "team_agents",
    "team_supervisors",
]
