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

import contextlib
import json
import time
from collections.abc import AsyncGenerator, Callable, Hashable
from contextlib import aclosing
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import lru_cache
from inspect import isawaitable
from typing import Any, cast
from weakref import WeakKeyDictionary

from graphql import (
    ArgumentNode,
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
    Visitor,
    execute_subscription_event,
    get_argument_values,
    parse,
    specified_rules,
    visit,
)
from graphql.utilities import get_operation_ast
from strawberry.schema.schema import validate_document
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import Operation
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage

from hub import metrics
from hub.auth import Identity
from hub.events import Event, decode_cursor
from hub.fanout import Follower, FrameSink, Render
from hub.runtime import Hub
from resolvers import activity
from resolvers.context import Context
from schema.common import Info, ctx
from schema.errors import shape
from schema.limits import RateLimitedTransportWS, estimate_cost

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
    """graphql-transport-ws that lets `caseActivity`/`articleActivity` write shared frames.

    An eligible subscription (:func:`plan`) does not run through strawberry at all once it is known
    to be valid and authorised (:meth:`_lean`): its task checks the document as strawberry would
    (cached verdicts, :class:`_Verdicts`), authorises, joins the stream hub and then only waits in
    `follow_fast`, so nothing of strawberry's per-operation machinery (executor, extension contexts,
    execution context, parsed message) stays parked per subscriber. Whenever anything goes wrong
    before the first frame, the operation takes strawberry's path instead, which answers exactly as
    it always did."""

    fanout_sink: FrameSink | None = None

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        await super().handle_subscribe(message)
        operation = self.operations.get(message["id"])
        if operation is not None and self._eligible(operation) is not None:
            # strawberry's receive loop keeps the last message until the next one: let the parsed
            # `subscribe` go (the operation holds what it needs)
            cast(dict[str, Any], message).clear()

    async def run_operation(self, operation: Operation[Any, Any]) -> None:
        planned = self._eligible(operation)
        if planned is not None and await self._lean(operation, planned):
            return
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

    def _eligible(self, operation: Operation[Any, Any]) -> _Plan | None:
        """The plan of an operation the lean path may serve (None: strawberry's path)."""
        context = self.context
        if not isinstance(context, Context) or not context.hub.settings.ws_fanout:
            return None
        if getattr(self.schema, "hub_max_tokens", None) is None or not isinstance(operation.query, str):
            return None
        name = operation.operation_name
        if not (name is None or isinstance(name, str)):
            return None
        try:
            planned = plan(operation.query, name)
        except Exception:  # not even a document: strawberry reports it
            return None
        return planned if planned is not None and planned.lean else None

    async def _lean(self, operation: Operation[Any, Any], planned: _Plan) -> bool:
        """Serve an eligible subscription without strawberry; False: nothing was sent, take
        strawberry's path (a document, variables, authorisation or cursor it refuses, a failure
        before the first frame)."""
        context = self.context
        assert isinstance(context, Context)
        hub = context.hub
        settings = hub.settings
        variables = operation.variables if isinstance(operation.variables, dict) else {}
        try:
            checked = _verdicts(self.schema).check(operation.query, operation.operation_name, variables)
            if checked is None:
                return False
            operation.query = checked.query  # one string per document, not one per subscriber
            stream, after = _arguments(self.schema, checked, variables, operation.operation_name)
            me = context.me
            if after:
                decode_cursor(after, stream)
            await activity.authorize(context.fresh(), stream)  # its loaders (the documents) are dropped
            sink = self.sink(settings.subscriber_queue)
            if sink is None:
                return False
        except Exception:
            return False
        from schema.activity import ActivityEvent, stream_error

        follower = cast(_LeanFollower, _follower(
            self.schema._schema, planned, operation.id, checked.query, variables,  # type: ignore[attr-defined]
            operation.operation_name, hub, me, sink, ActivityEvent.of, operation))
        del checked, variables
        failure: Exception | None = None
        metrics.SUBSCRIPTIONS.inc()
        try:
            events = cast(AsyncGenerator[Event, None], activity.follow_fast(context.fresh(), stream, after, follower))
            async with aclosing(events):
                async for event in events:  # replayed after the cursor: rendered by the group
                    group = follower.group
                    if group is None:
                        continue
                    follower.sink.write(follower, *follower.frame(await group.render(event)))
                    follower.served()
        except Exception as exc:
            failure = exc
        finally:
            metrics.SUBSCRIPTIONS.dec()
        sent = follower.operation is None
        if not sent:
            return False  # nothing went out: strawberry's path answers, exactly as it would
        try:
            if failure is not None:
                error = stream_error(failure, operation=operation.operation_name or "anonymous",
                                     operation_type="subscription", tenant=me.tenant, user=me.sub)
                with contextlib.suppress(Exception):
                    await follower.sink.idle()  # frames on their way go out before the error
                await operation.send_operation_message(
                    {"id": operation.id, "type": "next",
                     "payload": {"data": None, "errors": [shape(error).formatted]}})
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except Exception as error:  # as strawberry's `run_operation`: the client is gone
            await self.handle_task_exception(error)
            with contextlib.suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise
        return True


class _LeanFollower(Follower):
    """The follower of a subscription served by the lean path: counts it once it is served (its
    first frame, or live), from when on there is no falling back to strawberry's path."""

    __slots__ = ("operation",)

    def __init__(self, *args: Any, operation: Operation[Any, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.operation: Operation[Any, Any] | None = operation

    def go_live(self, last: int) -> None:
        super().go_live(last)
        self.served()

    def served(self) -> None:
        operation, self.operation = self.operation, None
        if operation is None:
            return
        operation.variables = None  # the group key and the renderer keep what they read
        metrics.OPERATIONS.labels("subscription").inc()  # as strawberry's `OperationLog` counts
        metrics.FANOUT_LEAN.inc()


@dataclass(frozen=True)
class _Checked:
    """A document strawberry accepts for this schema (token limit, validation rules)."""

    query: str
    document: DocumentNode
    root: FieldNode
    cost_variables: tuple[str, ...]
    """Variables the cost estimate reads (those given as a `first` argument)."""


class _Verdicts:
    """Whether strawberry would accept an operation for this schema, cached: parse with the token
    limit (`MaxTokensLimiter`), graphql's rules plus the schema's own (`AddValidationRules`, as
    `ValidationCache` runs them), then the cost limit (`limits.QueryCostLimiter`) for the values
    of the variables it reads."""

    def __init__(self, schema: Any, maxsize: int = 512) -> None:
        self.schema = schema
        self.rules = (*specified_rules, *schema.hub_validation_rules)
        self.max_tokens: int = schema.hub_max_tokens
        self.max_cost: int | None = schema.hub_max_cost
        self._document = lru_cache(maxsize)(self._validate)
        self._within_cost = lru_cache(maxsize)(self._cost_ok)

    def check(self, query: str, operation_name: str | None, variables: dict[str, Any]) -> _Checked | None:
        checked = self._document(query, operation_name)
        if checked is None or self.max_cost is None:
            return checked
        read = json.dumps({name: variables[name] for name in checked.cost_variables if name in variables},
                          sort_keys=True, default=str)
        return checked if self._within_cost(query, operation_name, read) else None

    def _cost_ok(self, query: str, operation_name: str | None, read: str) -> bool:
        """Within the cost limit, for these values of the variables the estimate reads (JSON)."""
        checked = self._document(query, operation_name)
        assert checked is not None and self.max_cost is not None
        return estimate_cost(self.schema._schema, checked.document, operation_name, json.loads(read)) <= self.max_cost

    def _validate(self, query: str, operation_name: str | None) -> _Checked | None:
        try:
            document = parse(query, max_tokens=self.max_tokens)
        except GraphQLError:
            return None
        if validate_document(self.schema._schema, document, self.rules):
            return None
        operation = get_operation_ast(document, operation_name)
        if operation is None or len(operation.selection_set.selections) != 1:
            return None
        root = operation.selection_set.selections[0]
        if not isinstance(root, FieldNode) or root.directives or root.name.value not in ROOT_FIELDS:
            return None
        cost_variables: set[str] = set()

        class FirstVariables(Visitor):
            def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
                if node.name.value == "first" and isinstance(node.value, VariableNode):
                    cost_variables.add(node.value.name.value)

        visit(document, FirstVariables())
        return _Checked(query, document, root, tuple(sorted(cost_variables)))


_VERDICTS: WeakKeyDictionary[Any, _Verdicts] = WeakKeyDictionary()


def _verdicts(schema: Any) -> _Verdicts:
    found = _VERDICTS.get(schema)
    if found is None:
        found = _VERDICTS[schema] = _Verdicts(schema)
    return found


def _arguments(schema: Any, checked: _Checked, variables: dict[str, Any],
               operation_name: str | None) -> tuple[str, str | None]:
    """The stream and cursor of a checked subscription (the root field's coerced arguments);
    raises when the variables do not coerce (strawberry reports that)."""
    built = Executor.build(schema._schema, checked.document, raw_variable_values=variables,
                           operation_name=operation_name)
    if isinstance(built, list):
        raise GraphQLError("Variables do not coerce")
    subscription = schema._schema.subscription_type
    assert subscription is not None
    name = checked.root.name.value
    arguments = get_argument_values(subscription.fields[name], checked.root, built.variable_values)
    after = arguments.get("after")
    if name == "caseActivity":
        return f"case:{arguments['caseId']}", after
    return f"article:{arguments['articleId']}", after


@dataclass(frozen=True)
class _Plan:
    document: DocumentNode
    shared: bool
    variables: tuple[str, ...]
    lean: bool = False
    """The handler may serve it without strawberry (:meth:`FanoutTransportWS._lean`)."""


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
    lean = not root.directives and not operation.directives
    return _Plan(document, walk.shared, tuple(sorted(walk.variables)), lean)


def _renderer(schema: GraphQLSchema, planned: _Plan, variables: dict[str, Any], operation_name: str | None,
              hub: Hub, viewer: Identity, make: Callable[[Event], object]) -> Render:
    """Renders events for a group: the subscription's selection set executed on each event."""
    built = Executor.build(schema, planned.document, raw_variable_values=variables, operation_name=operation_name)
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
    return _follower(info._raw_info.schema, planned, operation.id, operation.query, operation.variables,
                     operation.operation_name, context.hub, me, sink, make)


def _follower(schema: GraphQLSchema, planned: _Plan, op_id: str, query: str, variables: dict[str, Any],
              operation_name: str | None, hub: Hub, me: Identity, sink: FrameSink,
              make: Callable[[Event], object], lean: Operation[Any, Any] | None = None) -> Follower:
    """The follower of one subscription (a :class:`_LeanFollower` for the lean path's `lean`)."""
    settings = hub.settings

    def renderer() -> Render:
        return _renderer(schema, planned, variables, operation_name, hub, me, make)
    used = json.dumps({name: variables.get(name) for name in planned.variables}, sort_keys=True, default=str)
    viewer: Hashable = () if planned.shared else (me.sub, tuple(sorted(me.roles)), me.name, me.skills, me.kcs)
    group = (query, operation_name, used, me.is_staff, viewer)
    if lean is not None:
        return _LeanFollower(group, staff=me.is_staff, renderer=renderer, sink=sink, op_id=op_id, exp=me.exp,
                             limit=settings.subscriber_queue, operation=lean)
    return Follower(group, staff=me.is_staff, renderer=renderer, sink=sink, op_id=op_id, exp=me.exp,
                    limit=settings.subscriber_queue)
