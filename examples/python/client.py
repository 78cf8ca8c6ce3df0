"""Collab Hub integrator example: open a case, then follow its activity live.

    HUB_URL=http://127.0.0.1:8000 HUB_TOKEN=$(collabhub token --sub carol --role customer --tenant demo) \\
        python examples/python/client.py --subject "VPN drops every 10 minutes"

Needs `httpx` and `websockets`. The token comes from the environment (mint one with
`collabhub token`; in production your identity provider signs it). Queries and mutations are
POSTed with `Authorization: Bearer`; the subscription speaks graphql-transport-ws with the token in
`connection_init`. The history is read first; then the subscription resumes from its last cursor,
and from the last event seen after any disconnect, so nothing is missed or printed twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import httpx
import websockets

EVENT = "id seq cursor kind summary occurredAt actor { id name } data"
CASE_CREATE = """mutation($input: CaseCreateInput!) { caseCreate(input: $input) {
  errors { code message field } case { id subject status } } }"""
HISTORY = f"""query($stream: ID!, $after: String) {{ activity(stream: $stream, after: $after, first: 100) {{
  edges {{ node {{ {EVENT} }} }} pageInfo {{ hasNextPage }} }} }}"""
FOLLOW = f"""subscription($caseId: ID!, $after: String) {{
  caseActivity(caseId: $caseId, after: $after) {{ {EVENT} }} }}"""


class Hub:
    """A tiny GraphQL client of one hub for one token."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/") + "/graphql"
        self.token = token
        self.http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)

    async def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.http.post(self.url, json={"query": query, "variables": variables})
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"{response.status_code}: {body['errors'][0]['message']}")
        data: dict[str, Any] = body["data"]
        return data

    async def subscribe(self, query: str, **variables: Any) -> Any:
        """Yield the data of each `next` message of one subscription."""
        ws_url = "ws" + self.url.removeprefix("http")
        async with websockets.connect(ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {self.token}"}}))
            ack = json.loads(await ws.recv())
            if ack["type"] != "connection_ack":
                raise RuntimeError(f"refused: {ack}")
            subscribe = {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}
            await ws.send(json.dumps(subscribe))
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                elif message["type"] == "next":
                    if message["payload"].get("errors"):
                        raise RuntimeError(message["payload"]["errors"][0]["message"])
                    yield message["payload"]["data"]
                elif message["type"] == "error":
                    raise RuntimeError(message["payload"][0]["message"])
                elif message["type"] == "complete":
                    return


def show(event: dict[str, Any]) -> None:
    line = f"#{event['seq']} {event['kind']}: {event['summary']}"
    if "body" in event["data"]:
        line += f" — {event['data']['body']!r}"
    print(line, flush=True)


async def follow(hub: Hub, case_id: str, count: int | None) -> None:
    """Print the case's history, then its live events (reconnecting with the last cursor)."""
    cursor, shown, has_next = None, 0, True
    while has_next:  # the history first: a subscription without `after` starts from now
        page = (await hub.gql(HISTORY, stream=f"case:{case_id}", after=cursor))["activity"]
        for edge in page["edges"]:
            show(edge["node"])
            cursor, shown = edge["node"]["cursor"], shown + 1
            if count is not None and shown >= count:
                return
        has_next = page["pageInfo"]["hasNextPage"]
    delay = 0.5
    while True:
        try:
            async for data in hub.subscribe(FOLLOW, caseId=case_id, after=cursor):
                event = data["caseActivity"]
                show(event)
                cursor, shown, delay = event["cursor"], shown + 1, 0.5
                if count is not None and shown >= count:
                    return
        except (OSError, websockets.ConnectionClosedError) as exc:
            print(f"connection lost ({exc}); resuming in {delay:.1f}s", file=sys.stderr, flush=True)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 15.0)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--subject", help="open a new case with this subject")
    parser.add_argument("--description", default="")
    parser.add_argument("--case-id", help="follow an existing case instead")
    parser.add_argument("--count", type=int, help="stop after this many events")
    args = parser.parse_args()
    token = os.environ.get("HUB_TOKEN")
    if not token:
        parser.error("set HUB_TOKEN (e.g. `collabhub token --sub carol --role customer --tenant demo`)")
    hub = Hub(os.environ.get("HUB_URL", "http://127.0.0.1:8000"), token)
    case_id = args.case_id
    if not case_id:
        if not args.subject:
            parser.error("give --subject (new case) or --case-id")
        payload = (await hub.gql(CASE_CREATE, input={"subject": args.subject, "description": args.description}))
        result = payload["caseCreate"]
        if result["errors"]:
            print(f"refused: {result['errors']}", file=sys.stderr)
            return 1
        case_id = result["case"]["id"]
        print(f"opened {case_id}: {result['case']['subject']}", flush=True)
    await follow(hub, case_id, args.count)
    await hub.http.aclose()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        sys.exit(130)
