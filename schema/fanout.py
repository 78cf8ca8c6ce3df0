"""The GraphQL side of the fan-out fast path (`hub.fanout`, docs/performance.md).

Over this hub's graphql-transport-ws handler, `caseActivity` / `articleActivity` do not execute
and encode every live event once per subscriber: a subscriber joins a group keyed by (document,
operation name, the variables its selection set reads, audience), the group executes the
subscription's selection set on each event once (graphql-core's per-event executor, the very
execution strawberry would run, with a fresh context) and encodes the `payload` once, and the
stream hub writes the same bytes to every socket of the group.

Used only when it is safe, else the subscription takes strawberry's ordinary path:
* over a WebSocket whose handler is :class:`FanoutTransportWS` (HTTP and other transports never),
* the operation is a subscription with exactly one root field, selected directly, no @defer/@stream;
* a selection that reads anything beyond the event and its actor's profile (`id name roles skills
  kcs`) — e.g. `actor { online }`, which depends on the viewer — is grouped per viewer identity
  instead of per audience. Customers and staff are always in different groups, and the stream hub
  never offers an INTERNAL event to a customer's group.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import lru_cache
from inspect import isawaitable
from typing import Any

from graphql import (
    DirectiveNode,
    DocumentNode,
    Executor,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    execute_subscription_event,
    parse,
)
from graphql.utilities import get_operation_ast
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import Operation

from hub.auth import Identity
from hub.events import Event
from hub.fanout import Follower, FrameSink, Render
from hub.runtime import Hub
from resolvers.context import Context
from schema.common import Info, ctx
from schema.errors import shape
from schema.limits import RateLimitedTransportWS

ROOT_FIELDS = frozenset({"caseActivity", "articleActivity"})
SHARED_FIELDS = {
    "ActivityEvent": frozenset({"__typename", "id", "seq", "cursor", "stream", "kind", "visibility", "summary",
                                "occurredAt", "data", "actor"}),
    "User": frozenset({"__typename", "id", "name", "roles", "skills", "kcs"}),
}
"""Fields whose value is the same for every viewer of a tenant (no viewer-dependent resolver)."""
NESTED = {("ActivityEvent", "actor"): "User"}
LOADER_TTL = 5.0
"""Seconds a group's render context (and so its loaders: actor profiles) is reused across events."""


def _own_subfield_memo(executor_class: type[Executor[Any]]) -> None:
    """Work around an unbounded leak of graphql-core 3.3 subscriptions (every subscription, not
    only the fan-out's): `build_per_event_executor` is a shallow copy sharing the executor's
    `_relevant_sub_fields` memo, keyed by the `id()` of field lists made afresh for each event, so
    the memo grew by ~3 KB per event and subscriber (measured: RSS +190 MiB/min at 1,000
    deliveries/s). Each per-event executor gets its own memo instead."""
    original = executor_class.build_per_event_executor
    if getattr(original, "_hub_own_memo", False):
        return

    def build_per_event_executor(self: Executor[Any], payload: Any) -> Executor[Any]:
        executor = original(self, payload)
        if hasattr(executor, "_relevant_sub_fields"):
            executor._relevant_sub_fields = {}
        return executor

    build_per_event_executor._hub_own_memo = True  # type: ignore[attr-defined]
    executor_class.build_per_event_executor = build_per_event_executor  # type: ignore[method-assign]


_own_subfield_memo(Executor)


@dataclass(frozen=True)
class _Operation:
    handler: FanoutTransportWS
    id: str
    query: str
    variables: dict[str, Any]
    operation_name: str | None


_current: ContextVar[_Operation | None] = ContextVar("hub_ws_operation", default=None)
"""The operation a WebSocket operation task runs (set by :class:`FanoutTransportWS`)."""


class FanoutTransportWS(RateLimitedTransportWS):
    """graphql-transport-ws that lets `caseActivity`/`articleActivity` write shared frames."""

    fanout_sink: FrameSink | None = None

    async def run_operation(self, operation: Operation[Any, Any]) -> None:
        # runs as the operation's own task: the variable is seen by its resolvers only
        _current.set(_Operation(self, operation.id, operation.query, dict(operation.variables or {}),
                                operation.operation_name))
        await super().run_operation(operation)

    async def shutdown(self) -> None:
        try:
            await super().shutdown()
        finally:
            if self.fanout_sink is not None:
                self.fanout_sink.close()

    def sink(self, limit: int) -> FrameSink | None:
        """The connection's frame sink (a fresh one after an overflow), None without a raw send.

        Frames go to the server's own ASGI `send` (kept in the scope by `hub.app.RawSend`, past
        the per-message wrappers) while the connection's token watchdog has not closed it."""
        if self.fanout_sink is None or not self.fanout_sink.usable:
            request = getattr(self.context, "request", None)
            watchdog = getattr(getattr(request, "state", None), "token_watchdog", None)
            scope = getattr(request, "scope", None) or {}
            send = scope.get("hub.raw_send")
            if send is None or watchdog is None:
                return None
            self.fanout_sink = FrameSink(send, limit, watchdog=watchdog)
        return self.fanout_sink


@dataclass(frozen=True)
class _Plan:
    document: DocumentNode
    shared: bool
    variables: tuple[str, ...]


class _Walk:
    """Which fields and variables the root field's selection set reads."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.fragments = fragments
        self.seen: set[str] = set()
        self.shared = True
        self.incremental = False
        self.variables: set[str] = set()

    def selection_set(self, node: SelectionSetNode, type_name: str) -> None:
        for selection in node.selections:
            self.directives(selection.directives or ())
            if isinstance(selection, FieldNode):
                name = selection.name.value
                if name not in SHARED_FIELDS.get(type_name, ()):
                    self.shared = False
                for argument in selection.arguments or ():
                    self.value(argument.value)
                if selection.selection_set is not None:
                    self.selection_set(selection.selection_set, NESTED.get((type_name, name), "?"))
            elif isinstance(selection, InlineFragmentNode):
                on = selection.type_condition.name.value if selection.type_condition else type_name
                self.selection_set(selection.selection_set, on)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in self.seen:
                self.seen.add(selection.name.value)
                fragment = self.fragments[selection.name.value]
                self.directives(fragment.directives or ())
                self.selection_set(fragment.selection_set, fragment.type_condition.name.value)

    def directives(self, directives: Any) -> None:
        for directive in directives:
            assert isinstance(directive, DirectiveNode)
            if directive.name.value in ("defer", "stream"):
                self.incremental = True
            for argument in directive.arguments or ():
                self.value(argument.value)

    def value(self, node: ValueNode) -> None:
        if isinstance(node, VariableNode):
            self.variables.add(node.name.value)
        elif isinstance(node, ListValueNode):
            for item in node.values:
                self.value(item)
        elif isinstance(node, ObjectValueNode):
            for field in node.fields:
                self.value(field.value)


@lru_cache(maxsize=512)
def plan(query: str, operation_name: str | None) -> _Plan | None:
    """How an (already validated) subscription document is fanned out; None: not eligible."""
    document = parse(query)
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.SUBSCRIPTION:
        return None
    selections = operation.selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return None
    root = selections[0]
    if root.name.value not in ROOT_FIELDS or root.selection_set is None:
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    walk = _Walk(fragments)
    walk.directives(root.directives or ())
    walk.directives(operation.directives or ())
    walk.selection_set(root.selection_set, "ActivityEvent")
    if walk.incremental:
        return None
    return _Plan(document, walk.shared, tuple(sorted(walk.variables)))


def _renderer(schema: GraphQLSchema, planned: _Plan, operation: _Operation, hub: Hub, viewer: Identity,
              make: Callable[[Event], object]) -> Render:
    """Renders events for a group: the subscription's selection set executed on each event."""
    built = Executor.build(schema, planned.document, raw_variable_values=operation.variables,
                           operation_name=operation.operation_name)
    if isinstance(built, list):  # strawberry coerced these very variables before: cannot happen
        raise GraphQLError("Variables do not coerce", extensions={"code": "INTERNAL"})
    executor: Executor[Any] = built
    identity = replace(viewer, exp=None)  # expiry is checked per follower, not per render
    context = Context(hub=hub, identity=identity)
    made = time.monotonic()

    async def render(event: Event) -> str:
        nonlocal context, made
        if time.monotonic() - made > LOADER_TTL:  # fresh loaders, but not a store read per event
            context, made = Context(hub=hub, identity=identity), time.monotonic()
        once = executor.build_per_event_executor(make(event))
        once.context_value = context
        result = execute_subscription_event(once)
        if isawaitable(result):
            result = await result
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [shape(error).formatted for error in result.errors]
        return json.dumps(payload, separators=(",", ":"))

    return render


def follower(info: Info, make: Callable[[Event], object]) -> Follower | None:
    """A fan-out follower for the current subscription, or None to take the ordinary path."""
    operation = _current.get()
    context = ctx(info)
    settings = context.hub.settings
    if operation is None or not settings.ws_fanout:
        return None
    planned = plan(operation.query, operation.operation_name)
    if planned is None:
        return None
    me = context.me
    sink = operation.handler.sink(settings.subscriber_queue)
    if sink is None:
        return None
    schema = info._raw_info.schema

    def renderer() -> Render:
        return _renderer(schema, planned, operation, context.hub, me, make)
    used = json.dumps({name: operation.variables.get(name) for name in planned.variables},
                      sort_keys=True, default=str)
    viewer: Hashable = () if planned.shared else (me.sub, tuple(sorted(me.roles)), me.name, me.skills, me.kcs)
    group = (operation.query, operation.operation_name, used, me.is_staff, viewer)
    return Follower(group, staff=me.is_staff, renderer=renderer, sink=sink, op_id=operation.id, exp=me.exp,
                    limit=settings.subscriber_queue)
