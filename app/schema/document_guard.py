"""What a document may cost, checked in one linear pass before graphql-core validates it.

graphql-core's validation and Strawberry's `QueryDepthLimiter` walk every fragment spread
as if it were written out: on `fragment F0 on Query {...F1 ...F1} fragment F1 ...` each
level doubles the walk, so 30 levels (1.1 KB) cost 2**30 visits on the event loop. Measured
on this schema, graphql-core's OverlappingFieldsCanBeMerged rule alone takes 1.6 s for 600
repeats of `me { id }` and 0.27 s for 140 spreads of one-field fragments: it compares every
pair of fields that answer the same response path.

`DocumentGuard` runs first, at the start of validation, and measures each operation once
per fragment (memoized), so its time is linear in the document:

* depth: nested fields, introspection fields not counted (as Strawberry's limiter did);
* fields: the selection's fields with every spread expanded (the work execution and
  validation will see), counted by fragment so a spread costs a lookup;
* repeats: how many fields answer one response path once spreads are expanded, which
  bounds the pairwise comparisons of validation;
* fragments: definitions in the document, which bounds its fragment-pair comparisons;
* string inputs: no NUL (PostgreSQL text cannot hold 0x00) and no lone UTF-16 surrogate
  (no UTF-8 encoding exists for one) in any string literal or variable, nested input
  objects and lists included: one check for every field and argument;
* operations: without `operationName`, exactly one (the spec's GetOperation).

A document over a limit is refused with a message naming the setting, and graphql-core's
validation does not run on it (Strawberry skips validation when errors are already set).
The rest is validated by graphql-core: on the event loop when nothing in it can make the
validation quadratic, else on a validation thread with a time limit. Leans on Strawberry
0.341.2 (pinned): `validate_document`, and validation skipped when an extension has set
`pre_execution_errors`.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from graphql import (
    ArgumentNode,
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    Node,
    ObjectFieldNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    Visitor,
    visit,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

# Characters PostgreSQL's text type, or UTF-8 itself, cannot carry.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_REASON = "contains a NUL character or a lone UTF-16 surrogate, which cannot be stored"


@dataclass(frozen=True)
class DocumentLimits:
    max_depth: int
    max_fields: int
    max_field_repeats: int
    max_fragments: int


@dataclass
class _Measure:
    depth: int
    fields: int
    # Every selection visited once spreads are expanded (fields, spreads, inline
    # fragments): bounds the work of counting response paths.
    nodes: int


class _Measurer:
    """Depth and expanded size of selection sets, each fragment measured once."""

    def __init__(self, fragments: Mapping[str, FragmentDefinitionNode]) -> None:
        self.fragments = fragments
        self.memo: dict[str, _Measure] = {}
        self.active: set[str] = set()

    def fragment(self, name: str) -> _Measure:
        known = self.memo.get(name)
        if known is not None:
            return known
        definition = self.fragments.get(name)
        if definition is None or name in self.active:
            # Unknown fragments and cycles are graphql-core's to report.
            return _Measure(0, 0, 0)
        self.active.add(name)
        measure = self.selection_set(definition.selection_set)
        self.active.discard(name)
        self.memo[name] = measure
        return measure

    def selection_set(self, selection_set: SelectionSetNode | None) -> _Measure:
        total = _Measure(0, 0, 0)
        if selection_set is None:
            return total
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                inner = self.selection_set(selection.selection_set)
                introspection = selection.name.value.startswith("__")
                depth = 0 if introspection else 1 + inner.depth
                fields = 1 + inner.fields
                nodes = 1 + inner.nodes
            elif isinstance(selection, InlineFragmentNode):
                inner = self.selection_set(selection.selection_set)
                depth, fields, nodes = inner.depth, inner.fields, 1 + inner.nodes
            elif isinstance(selection, FragmentSpreadNode):
                inner = self.fragment(selection.name.value)
                depth, fields, nodes = inner.depth, inner.fields, 1 + inner.nodes
            else:  # pragma: no cover - graphql-core has no other selection kind
                continue
            total.depth = max(total.depth, depth)
            total.fields += fields
            total.nodes += nodes
        return total


def _response_path_counts(
    selection_set: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> Counter[tuple[str, ...]]:
    """How many fields answer each response path, spreads expanded. Runs only once the
    expanded size is known to be within the limit, so its work is bounded by it."""
    counts: Counter[tuple[str, ...]] = Counter()
    # (selection set, response path of its parent, fragments spread on the way here)
    stack: list[tuple[SelectionSetNode, tuple[str, ...], frozenset[str]]] = [
        (selection_set, (), frozenset())
    ]
    while stack:
        current, path, spread = stack.pop()
        for selection in current.selections:
            if isinstance(selection, FieldNode):
                key = (selection.alias or selection.name).value
                field_path = (*path, key)
                counts[field_path] += 1
                if selection.selection_set is not None:
                    stack.append((selection.selection_set, field_path, spread))
            elif isinstance(selection, InlineFragmentNode):
                stack.append((selection.selection_set, path, spread))
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                definition = fragments.get(name)
                if definition is not None and name not in spread:
                    stack.append((definition.selection_set, path, spread | {name}))
    return counts


def _limit_error(message: str, setting: str, node: Node | None = None) -> GraphQLError:
    return GraphQLError(f"{message} (limit set by {setting})", node)


@dataclass
class DocumentMeasure:
    errors: list[GraphQLError]
    fragments: int = 0
    # The most fields answering one response path, in any operation.
    max_repeats: int = 0

    @property
    def validation_is_quadratic(self) -> bool:
        """Whether graphql-core's overlapping-fields rule has pairs to compare: fragments
        to compare with each other, or a response path answered by several fields."""
        return self.fragments > 0 or self.max_repeats > 1


def measure_document(document: DocumentNode, limits: DocumentLimits) -> DocumentMeasure:
    """The document's size against the limits, with an error for each one it exceeds."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    fragment_count = sum(
        isinstance(definition, FragmentDefinitionNode) for definition in document.definitions
    )
    measured = DocumentMeasure(errors=[], fragments=fragment_count)
    if fragment_count > limits.max_fragments:
        measured.errors.append(
            _limit_error(
                f"The document defines {fragment_count} fragments; at most "
                f"{limits.max_fragments} are allowed",
                "GRAPHQL_MAX_FRAGMENTS",
            )
        )
        return measured
    measurer = _Measurer(fragments)
    for operation in document.definitions:
        if not isinstance(operation, OperationDefinitionNode):
            continue
        name = f"Operation {operation.name.value!r}" if operation.name else "The operation"
        measure = measurer.selection_set(operation.selection_set)
        if measure.depth > limits.max_depth:
            measured.errors.append(
                _limit_error(
                    f"{name} is nested {measure.depth} fields deep; at most "
                    f"{limits.max_depth} are allowed",
                    "GRAPHQL_MAX_DEPTH",
                    operation,
                )
            )
            continue
        # Each field is visited with at most a few spreads and inline fragments around it;
        # ten selections per field allowed is far above any real document.
        if measure.fields > limits.max_fields or measure.nodes > 10 * limits.max_fields:
            measured.errors.append(
                _limit_error(
                    f"{name} selects {measure.fields} fields once its fragments are expanded; "
                    f"at most {limits.max_fields} are allowed",
                    "GRAPHQL_MAX_FIELDS",
                    operation,
                )
            )
            continue
        counts = _response_path_counts(operation.selection_set, fragments)
        path, repeats = max(counts.items(), key=lambda item: item[1], default=((), 0))
        measured.max_repeats = max(measured.max_repeats, repeats)
        if repeats > limits.max_field_repeats:
            measured.errors.append(
                _limit_error(
                    f"{name} selects {'.'.join(path)} {repeats} times once its fragments are "
                    f"expanded; at most {limits.max_field_repeats} are allowed",
                    "GRAPHQL_MAX_FIELD_REPEATS",
                    operation,
                )
            )
    return measured


def check_limits(document: DocumentNode, limits: DocumentLimits) -> list[GraphQLError]:
    """Errors for each limit the document exceeds; empty when it is within all of them."""
    return measure_document(document, limits).errors


class _UnstorableLiterals(Visitor):
    """String literals anywhere in arguments (fields, directives, defaults, nested
    objects and lists) that PostgreSQL could not store."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[GraphQLError] = []

    def enter_string_value(
        self, node: StringValueNode, _key: Any, parent: Any, _path: Any, ancestors: Any
    ) -> None:
        if not _UNSTORABLE.search(node.value):
            return
        names = [
            ancestor.name.value
            for ancestor in (*ancestors, parent)
            if isinstance(ancestor, (ArgumentNode, ObjectFieldNode))
        ]
        where = ".".join(names) or "a string literal"
        self.errors.append(GraphQLError(f"Argument {where} {UNSTORABLE_REASON}", node))


def unstorable_literals(document: DocumentNode) -> list[GraphQLError]:
    visitor = _UnstorableLiterals()
    visit(document, visitor)
    return visitor.errors


def _string_leaves(value: object) -> Iterator[tuple[str, str]]:
    """(path, text) for every string inside a JSON value, keys included; iterative, so
    deeply nested input cannot exhaust the stack."""
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        path, current = stack.pop()
        if isinstance(current, str):
            yield path, current
        elif isinstance(current, dict):
            for key, item in current.items():
                key_text = str(key)
                yield path, key_text
                stack.append((f"{path}.{key_text}", item))
        elif isinstance(current, list):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(current))


def unstorable_variables(variables: Mapping[str, object] | None) -> list[GraphQLError]:
    errors: list[GraphQLError] = []
    for name, value in (variables or {}).items():
        for path, text in _string_leaves({name: value}):
            if _UNSTORABLE.search(text):
                where = f"${path.lstrip('.')}" if path else f"${name}"
                errors.append(GraphQLError(f"Variable {where} {UNSTORABLE_REASON}"))
                break
    return errors


def one_operation(document: DocumentNode, operation_name: str | None) -> list[GraphQLError]:
    """The spec's GetOperation: without `operationName`, a document must hold one operation
    (Strawberry would otherwise run the first)."""
    if operation_name is not None:
        return []
    count = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
    if count <= 1:
        return []
    return [
        GraphQLError(
            f"The document holds {count} operations; say which one to run with `operationName`"
        )
    ]


# graphql-core's validation of documents with fragments or repeated fields runs on these
# threads, not the event loop: within the limits it measured up to about 60 ms on the
# project's machine for adversarial shapes (16 fragments of 7 aliased fields each).
# Threads of its own, so a flood of such documents cannot hold up password hashing on the
# default executor; a document that takes longer than the time limit is answered with an
# error while its validation finishes in the background (its work is bounded by the limits).
VALIDATION_THREADS = 2
VALIDATION_TIMEOUT_S = 2.0
_validation_executor: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _validation_executor
    if _validation_executor is None:
        _validation_executor = ThreadPoolExecutor(
            max_workers=VALIDATION_THREADS, thread_name_prefix="graphql-validation"
        )
    return _validation_executor


async def validated_off_loop(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: tuple[type[ASTValidationRule], ...],
    timeout_s: float = VALIDATION_TIMEOUT_S,
) -> list[GraphQLError]:
    """graphql-core's validation, as Strawberry runs it, on a validation thread."""
    loop = asyncio.get_running_loop()
    validation = loop.run_in_executor(_executor(), validate_document, schema, document, rules)
    try:
        return await asyncio.wait_for(validation, timeout_s)
    except TimeoutError:
        return [
            GraphQLError(
                f"The document took longer than {timeout_s:g} s to validate; send a smaller one"
            )
        ]


class DocumentGuard(SchemaExtension):
    """Refuses, before graphql-core validates it, a document over a limit or with a string
    input the database cannot store; validates the rest, off the event loop where the
    validation's cost grows faster than the document."""

    def __init__(self, *, limits: DocumentLimits) -> None:
        super().__init__()
        self.limits = limits

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            measured = measure_document(document, self.limits)
            # The name the client sent: `operation_name` falls back to the first operation's.
            provided_name: str | None = getattr(context, "_provided_operation_name", None)
            errors = measured.errors or one_operation(document, provided_name)
            if not errors:
                errors = unstorable_literals(document) + unstorable_variables(context.variables)
            if errors:
                # Set before validation: Strawberry then skips graphql-core's rules.
                context.pre_execution_errors = errors
            elif measured.validation_is_quadratic and context.validation_rules:
                # Set, even when empty: Strawberry then does not validate again.
                context.pre_execution_errors = await validated_off_loop(
                    context.schema._schema, document, tuple(context.validation_rules)
                )
        yield


__all__ = [
    "DocumentGuard",
    "DocumentLimits",
    "DocumentMeasure",
    "check_limits",
    "measure_document",
    "one_operation",
    "unstorable_literals",
    "unstorable_variables",
    "validated_off_loop",
]
