from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Boolean, Enum, Integer, String, true
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, Timestamps, UUIDPrimaryKey


class Role(StrEnum):
    ADMIN = "ADMIN"
    SUPERVISOR = "SUPERVISOR"
    AGENT = "AGENT"


class User(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(Enum(Role, name="user_role"), default=Role.AGENT)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Carried in every access token; raising it (password change or reset, deactivation)
    # makes every token issued before unusable at once.
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
