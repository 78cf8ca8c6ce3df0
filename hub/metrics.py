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


def render() -> bytes:
    return generate_latest(REGISTRY)
