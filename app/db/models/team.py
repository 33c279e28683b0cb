"""Teams: the agents a supervisor reviews. A user may be in several teams, as a supervisor
or as an agent; an agent in several teams is seen by the supervisors of each."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, Timestamps, UUIDPrimaryKey


class Team(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "teams"

    name: Mapped[str] = mapped_column(String(100))
    # The name as people compare it ("Night shift" and "night shift" clash): unique, so two
    # concurrent creations cannot both take it.
    name_key: Mapped[str] = mapped_column(String(100), unique=True)


# Membership rows go with their team; a user with memberships cannot be deleted (users are
# deactivated, never deleted).
team_supervisors = Table(
    "team_supervisors",
    Base.metadata,
    Column("team_id", ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="RESTRICT"), primary_key=True),
    Index("ix_team_supervisors_user_id", "user_id"),
)

team_agents = Table(
    "team_agents",
    Base.metadata,
    Column("team_id", ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="RESTRICT"), primary_key=True),
    Index("ix_team_agents_user_id", "user_id"),
)
