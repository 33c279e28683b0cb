"""Call status events: what the worker publishes to Redis after each committed change and
what the `callStatus` subscription relays."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from app.db.models import Call, CallStatus, PipelineStage
from app.services.broadcast import call_status_channel


def status_channel(call_id: uuid.UUID) -> str:
    return call_status_channel(call_id)


@dataclass(frozen=True, slots=True)
class StatusEvent:
    call_id: uuid.UUID
    status: CallStatus
    stage: PipelineStage
    progress: float
    error: str | None
    at: datetime
    deleted: bool = False
    """The call is gone: subscribers stop."""

    @property
    def is_final(self) -> bool:
        return self.deleted or self.status is not CallStatus.RUNNING

    @classmethod
    def of_deleted(cls, call: Call) -> StatusEvent:
        return replace(cls.of(call), deleted=True, at=datetime.now(UTC))

    @classmethod
    def of(cls, call: Call) -> StatusEvent:
        return cls(
            call_id=call.id,
            status=call.status,
            stage=call.stage,
            progress=call.progress,
            error=call.error,
            at=call.updated_at or datetime.now(UTC),
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "callId": str(self.call_id),
                "status": self.status.value,
                "stage": self.stage.value,
                "progress": self.progress,
                "error": self.error,
                "at": self.at.isoformat(),
                "deleted": self.deleted,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> StatusEvent:
        data = json.loads(raw)
        return cls(
            call_id=uuid.UUID(data["callId"]),
            status=CallStatus(data["status"]),
            stage=PipelineStage(data["stage"]),
            progress=float(data["progress"]),
            error=data.get("error"),
            at=datetime.fromisoformat(data["at"]),
            deleted=bool(data.get("deleted", False)),
        )
