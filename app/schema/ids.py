"""The public IDs, as the GraphQL layer uses them (defined in `app.ids`)."""

from app.ids import parse_global_id, parse_typed_id, to_global_id

__all__ = ["parse_global_id", "parse_typed_id", "to_global_id"]
