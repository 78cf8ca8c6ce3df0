"""Prometheus metrics of the hub (served as text on `/metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter("hub_graphql_requests", "GraphQL operations executed", ["kind"], registry=REGISTRY)
ERRORS = Counter("hub_graphql_errors", "GraphQL errors returned", ["code"], registry=REGISTRY)
WS_CONNECTIONS = Gauge("hub_ws_connections", "Open WebSocket connections", registry=REGISTRY)
SUBSCRIPTIONS = Gauge("hub_subscriptions", "Active subscriptions", registry=REGISTRY)
EVENTS_DELIVERED = Counter("hub_events_delivered", "Events delivered to subscribers", registry=REGISTRY)
DELIVERY_LATENCY = Histogram(
    "hub_event_delivery_seconds", "Commit-to-delivery latency of live events",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=REGISTRY,
)
STORE_COMMANDS = Gauge("hub_store_commands", "Store commands issued since start", registry=REGISTRY)
EVENTS_PUBLISHED = Gauge("hub_events_published", "Events published on the bus since start", registry=REGISTRY)
PUBLISH_FAILURES = Gauge("hub_event_publish_failures", "Bus publishes that failed (relayed later)", registry=REGISTRY)
BUS_RECONNECTS = Gauge("hub_bus_reconnects", "Event bus reconnections since start", registry=REGISTRY)
# debug gauges for soak runs (scripts/bench --soak): set when /metrics is scraped
ASYNCIO_TASKS = Gauge("hub_asyncio_tasks", "asyncio tasks alive in this process", registry=REGISTRY)
FANOUT_STREAMS = Gauge("hub_fanout_streams", "Streams with a fan-out bus subscription (hub/fanout.py)",
                       registry=REGISTRY)
FANOUT_FOLLOWERS = Gauge("hub_fanout_followers", "Subscribers served by the fan-out fast path", registry=REGISTRY)
FANOUT_RENDERS = Counter("hub_fanout_renders", "Payloads rendered by the fan-out path (one per event and group)",
                         registry=REGISTRY)
FANOUT_FRAMES = Counter("hub_fanout_frames", "Frames framed by the fan-out path (one per event, group and op id)",
                        registry=REGISTRY)
FANOUT_DIRECT = Counter("hub_fanout_direct_writes", "Fan-out deliveries written straight to a socket's transport",
                        registry=REGISTRY)
FANOUT_COALESCED = Counter("hub_fanout_coalesced_frames",
                           "Frames that shared a socket write with the one before (a stream catching up)",
                           registry=REGISTRY)
FANOUT_LEAN = Counter("hub_fanout_lean_subscriptions",
                      "Subscriptions served by the lean fan-out path (schema/fanout.py: no strawberry operation)",
                      registry=REGISTRY)
FANOUT_BACKLOG = Gauge("hub_fanout_backlog", "Fan-out events/frames waiting (replays, blocked sockets)",
                       registry=REGISTRY)


def render() -> bytes:
    return generate_latest(REGISTRY)

# HTTP requests (hub/logging.py middleware) and GraphQL operations by type (hub/logging.py extension)
HTTP_REQUESTS = Counter("hub_http_requests", "HTTP requests served", ["method", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram(
    "hub_http_request_seconds", "HTTP request duration", ["method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=REGISTRY,
)
OPERATIONS = Counter("hub_graphql_operations", "GraphQL operations executed", ["type"], registry=REGISTRY)

# webhooks (hub/webhooks.py)
WEBHOOK_QUEUED = Counter("hub_webhook_deliveries_queued", "Webhook deliveries queued", registry=REGISTRY)
WEBHOOK_ATTEMPTS = Counter(
    "hub_webhook_attempts", "Webhook delivery attempts by outcome (delivered, retry, failed)", ["outcome"],
    registry=REGISTRY,
)
WEBHOOK_LATENCY = Histogram(
    "hub_webhook_delivery_seconds", "Webhook POST duration (attempts that got a response)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=REGISTRY,
)
