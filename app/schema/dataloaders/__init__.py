"""Per-request DataLoaders, one typed loader per module. Each batch opens its own short
session (sibling fields resolve concurrently), and every nested list of a call page is one
query whatever the page size.

`DataLoaders` holds what does not depend on the viewer, so one set can serve every
subscriber of a status event; `ViewerDataLoaders` holds what does (a user's teams as the
viewer may see them) and is rebuilt when the viewer is checked again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app.db.engine import SessionFactory
from app.db.models import (
    AnalysisAction,
    AnalysisEntity,
    AnalysisIntent,
    AnalysisIssue,
    AnalysisKeypoint,
    User,
)
from app.schema.dataloaders.analysis_items import AnalysisItemsLoader
from app.schema.dataloaders.call_analysis import CallAnalysisLoader
from app.schema.dataloaders.call_categories import CallCategoriesLoader
from app.schema.dataloaders.call_metrics import CallMetricsLoader
from app.schema.dataloaders.call_scorecards import CallScorecardsLoader
from app.schema.dataloaders.call_speakers import CallSpeakersLoader
from app.schema.dataloaders.category_by_id import CategoryByIdLoader
from app.schema.dataloaders.segments import SegmentsLoader
from app.schema.dataloaders.team_members import TeamMembersLoader
from app.schema.dataloaders.teams_of_user import TeamsOfUserLoader
from app.schema.dataloaders.user_by_id import UserByIdLoader
from app.schema.dataloaders.voiceprints import VoiceprintLoader


class DataLoaders:
    def __init__(self, sessions: SessionFactory) -> None:
        self.user_by_id = UserByIdLoader(sessions)
        self.segments = SegmentsLoader(sessions)
        self.speakers = CallSpeakersLoader(sessions)
        self.intents = AnalysisItemsLoader(sessions, AnalysisIntent)
        self.entities = AnalysisItemsLoader(sessions, AnalysisEntity)
        self.issues = AnalysisItemsLoader(sessions, AnalysisIssue)
        self.actions = AnalysisItemsLoader(sessions, AnalysisAction)
        self.keypoints = AnalysisItemsLoader(sessions, AnalysisKeypoint)
        self.analysis = CallAnalysisLoader(sessions)
        self.metrics = CallMetricsLoader(sessions)
        self.call_categories = CallCategoriesLoader(sessions)
        self.category_by_id = CategoryByIdLoader(sessions)
        self.call_scorecards = CallScorecardsLoader(sessions)
        self.voiceprints = VoiceprintLoader(sessions)


class ViewerDataLoaders:
    def __init__(self, sessions: SessionFactory, viewer: Callable[[], Awaitable[User]]) -> None:
        self.members = TeamMembersLoader(sessions)
        self.teams_of_user = TeamsOfUserLoader(sessions, viewer)


__all__ = ["DataLoaders", "ViewerDataLoaders"]
