"""Uploads are all or nothing: `uploadCall` is the only field of its mutation.

Mutation fields run one after another and each is non-null, so any field failing after an
`uploadCall` succeeded (a second `uploadCall` fed the same file, or any other mutation)
would null the whole `data`: the call would be created and processed while its id never
reached the client. One `uploadCall` per request (beside `__typename`) rules that out for
every document, and is refused in validation, before any field runs. A client uploading
several files sends one request per file, as the multipart clients do by default.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationRule,
)

UPLOAD_FIELD = "uploadCall"


class UploadCallStandsAlone(ValidationRule):
    def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
        if node.operation is not OperationType.MUTATION:
            return
        fields = self._root_fields(node.selection_set, set())
        if not any(name == UPLOAD_FIELD for _, name in fields):
            return
        # Identical fields under one response key merge into one execution: count keys.
        keys = sorted({key for key, name in fields if name != "__typename"})
        if len(keys) > 1:
            self.report_error(
                GraphQLError(
                    f"`{UPLOAD_FIELD}` must be the only field of its mutation (this one has "
                    f"{', '.join(keys)}): send one request per file, so every call created "
                    "is answered with its id",
                    node,
                )
            )

    def _root_fields(
        self, selection_set: SelectionSetNode, seen_fragments: set[str]
    ) -> list[tuple[str, str]]:
        """(response key, field name) of every root field, fragments expanded; directives
        such as @skip are ignored, so a field that might run counts."""
        found: list[tuple[str, str]] = []
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                found.append((selection.alias.value if selection.alias else name, name))
            elif isinstance(selection, InlineFragmentNode):
                found += self._root_fields(selection.selection_set, seen_fragments)
            elif isinstance(selection, FragmentSpreadNode):
                fragment_name = selection.name.value
                fragment = self.context.get_fragment(fragment_name)
                if fragment is None or fragment_name in seen_fragments:
                    continue  # unknown or cyclic: other rules report it
                seen_fragments.add(fragment_name)
                found += self._root_fields(fragment.selection_set, seen_fragments)
        return found
