"""Case workspaces and attachments through the public API and HTTP, against the running hub."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.harness import Client, HubProcess

CREATE_CASE = """mutation($s: String!) { caseCreate(input: {subject: $s}) {
  errors { code message field } case { id } } }"""
ITEM = "id caseId kind title content position order version shared author { id } attachments { id filename size url }"
ADD = f"""mutation($c: ID!, $k: WorkspaceItemKind!, $t: String!, $body: String! = "", $shared: Boolean! = false,
  $a: [ID!]) {{ workspaceItemAdd(input: {{caseId: $c, kind: $k, title: $t, content: $body, shared: $shared,
  attachmentIds: $a}}) {{ errors {{ code message field }} item {{ {ITEM} }} }} }}"""
UPDATE = f"""mutation($i: ID!, $v: Int!, $body: String, $t: String, $shared: Boolean, $a: [ID!]) {{
  workspaceItemUpdate(input: {{itemId: $i, expectedVersion: $v, content: $body, title: $t, shared: $shared,
    attachmentIds: $a}}) {{
    errors {{ code message field }} item {{ {ITEM} }} }} }}"""
MOVE = f"""mutation($i: ID!, $p: Int!) {{ workspaceItemMove(input: {{itemId: $i, position: $p}}) {{
  errors {{ code message field }} item {{ {ITEM} }} }} }}"""
WORKSPACE = f"query($c: ID!) {{ workspace(caseId: $c) {{ {ITEM} }} }}"
CASE_WORKSPACE = "query($c: ID!) { case(id: $c) { workspace { id title } } }"
COMMENT = """mutation($s: ID!, $b: String!, $v: Visibility! = PUBLIC, $a: [ID!]) {
  commentAdd(input: {subjectId: $s, body: $b, visibility: $v, attachmentIds: $a}) {
    errors { code message field } comment { id attachments { id filename contentType size url } } } }"""
HISTORY = """query($s: ID!) { activity(stream: $s, first: 100) { edges { node { kind visibility data } } } }"""


def workspace(client: Client, case_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.gql(WORKSPACE, c=case_id)["workspace"]
    return items


def events(client: Client, case_id: str) -> list[dict[str, Any]]:
    edges = client.gql(HISTORY, s=f"case:{case_id}")["activity"]["edges"]
    return [e["node"] for e in edges if e["node"]["kind"].startswith("workspace.")]


def upload(client: Client, name: str, data: bytes, content_type: str = "text/plain") -> httpx.Response:
    return client.http.post("/attachments", files={"file": (name, data, content_type)})


def test_add_update_and_conflict(user: Callable[..., Client]) -> None:
    alice, bob = user("alice", "agent"), user("bob", "expert")
    case_id = alice.mutate(CREATE_CASE, s="Workspace")["case"]["id"]
    item = alice.mutate(ADD, c=case_id, k="DOCUMENT", t="Findings", body="v1")["item"]
    assert (item["kind"], item["version"], item["position"], item["shared"]) == ("DOCUMENT", 1, 0, False)
    assert item["author"] == {"id": "alice"} and item["caseId"] == case_id

    # when two people edit from version 1, the second one is refused and nothing is written
    updated = alice.mutate(UPDATE, i=item["id"], v=1, body="v2 by alice")["item"]
    assert (updated["content"], updated["version"], updated["title"]) == ("v2 by alice", 2, "Findings")
    stale = bob.mutate_error(UPDATE, i=item["id"], v=1, body="v2 by bob", t="Bob's title")
    assert (stale["code"], stale["field"]) == ("CONFLICT", "expectedVersion")
    (current,) = workspace(bob, case_id)
    assert (current["content"], current["title"], current["version"]) == ("v2 by alice", "Findings", 2)
    retitled = bob.mutate(UPDATE, i=item["id"], v=2, t="Root cause")["item"]
    assert (retitled["title"], retitled["content"], retitled["version"]) == ("Root cause", "v2 by alice", 3)
    # the current values again: no new version, no event
    assert alice.mutate(UPDATE, i=item["id"], v=3, t="Root cause")["item"]["version"] == 3
    kinds = [(e["kind"], e["visibility"]) for e in events(alice, case_id)]
    assert kinds == [("workspace.item_added", "INTERNAL"), ("workspace.item_updated", "INTERNAL"),
                     ("workspace.item_updated", "INTERNAL")]

    # bad input is answered clearly
    assert alice.mutate_error(ADD, c=case_id, k="LOG", t="  ")["field"] == "title"
    assert alice.mutate_error(ADD, c="case_000000000000000000000000", k="LOG", t="x")["code"] == "NOT_FOUND"
    assert alice.mutate_error(UPDATE, i="wsi_nope", v=1, body="x")["code"] == "NOT_FOUND"
    assert alice.mutate_error(ADD, c=case_id, k="LOG", t="big", body="x" * 200_001)["field"] == "content"
    assert len(workspace(alice, case_id)) == 1


def test_move_keeps_a_dense_order(user: Callable[..., Client]) -> None:
    alice = user("alice", "agent")
    case_id = alice.mutate(CREATE_CASE, s="Ordering")["case"]["id"]
    ids = {t: alice.mutate(ADD, c=case_id, k="STEP", t=t)["item"]["id"] for t in "ABCD"}

    def order() -> str:
        items = workspace(alice, case_id)
        assert [i["position"] for i in items] == list(range(len(items)))
        assert all(i["order"] == i["position"] for i in items)
        return "".join(i["title"] for i in items)

    assert order() == "ABCD"
    assert alice.mutate(MOVE, i=ids["D"], p=0)["item"]["position"] == 0
    assert order() == "DABC"
    alice.mutate(MOVE, i=ids["D"], p=2)
    assert order() == "ABDC"
    assert alice.mutate(MOVE, i=ids["A"], p=99)["item"]["position"] == 3  # clamped to the end
    assert order() == "BDCA"
    alice.mutate(MOVE, i=ids["C"], p=2)  # already there: nothing happens
    assert alice.mutate_error(MOVE, i=ids["C"], p=-1)["field"] == "position"
    moved = [e for e in events(alice, case_id) if e["kind"] == "workspace.item_moved"]
    assert [(e["data"]["from"], e["data"]["to"]) for e in moved] == [(3, 0), (0, 2), (0, 3)]
    added = alice.mutate(ADD, c=case_id, k="RESULT", t="E")["item"]
    assert added["position"] == 4 and order() == "BDCAE"


def test_customers_read_shared_items_only_and_never_write(user: Callable[..., Client]) -> None:
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = carol.mutate(CREATE_CASE, s="Shared")["case"]["id"]
    log = alice.mutate(ADD, c=case_id, k="LOG", t="Internal trace", body="stack trace")["item"]
    step = alice.mutate(ADD, c=case_id, k="STEP", t="Restart the router", shared=True)["item"]
    alice.mutate(ADD, c=case_id, k="DOCUMENT", t="Internal notes")

    # customers see the shared item (positioned among what they see) and its event only
    (seen,) = workspace(carol, case_id)
    assert (seen["id"], seen["position"]) == (step["id"], 0)
    assert carol.gql(CASE_WORKSPACE, c=case_id)["case"]["workspace"] == [{"id": step["id"], "title": step["title"]}]
    assert [e["data"]["title"] for e in events(carol, case_id)] == ["Restart the router"]
    assert len(workspace(alice, case_id)) == 3

    # customers cannot write
    for error in (
        carol.mutate_error(ADD, c=case_id, k="LOG", t="mine"),
        carol.mutate_error(UPDATE, i=step["id"], v=1, body="changed"),
        carol.mutate_error(MOVE, i=step["id"], p=0),
    ):
        assert error["code"] == "FORBIDDEN"
    assert carol.mutate_error(UPDATE, i=log["id"], v=1, body="x")["code"] == "FORBIDDEN"

    # sharing and unsharing: customers learn the item left, not what it became
    alice.mutate(UPDATE, i=log["id"], v=1, shared=True)
    assert [i["title"] for i in workspace(carol, case_id)] == ["Internal trace", "Restart the router"]
    alice.mutate(UPDATE, i=step["id"], v=1, shared=False, t="Renamed secretly")
    assert [i["title"] for i in workspace(carol, case_id)] == ["Internal trace"]
    customer_events = events(carol, case_id)
    assert [e["kind"] for e in customer_events][-1] == "workspace.item_unshared"
    assert customer_events[-1]["data"] == {"itemId": step["id"]}
    assert "Renamed" not in str(customer_events) and "Internal notes" not in str(customer_events)

    # other customers and other tenants see nothing
    assert workspace(user("dave", "customer"), case_id) == []
    assert workspace(user("mallory", "admin", tenant_id="other-" + alice.tenant), case_id) == []


def test_upload_and_download(hub: HubProcess, user: Callable[..., Client]) -> None:
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = carol.mutate(CREATE_CASE, s="Files")["case"]["id"]
    data = b"line one\nline two\n" * 10_000
    response = upload(alice, "../../etc/trace.log", data)
    assert response.status_code == 201, response.text
    meta = response.json()
    assert {k: meta[k] for k in ("filename", "contentType", "size")} == {
        "filename": "trace.log", "contentType": "text/plain", "size": len(data)}
    url = meta["url"]
    assert url == f"/attachments/{meta['id']}"

    # the uploader downloads it; customers of the case only once a shared item references it
    got = alice.http.get(url)
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"].startswith("text/plain")
    assert got.headers["content-disposition"].startswith("attachment;")
    assert carol.http.get(url).status_code == 404
    item = alice.mutate(ADD, c=case_id, k="LOG", t="Trace", a=[meta["id"]])["item"]
    assert [a["id"] for a in item["attachments"]] == [meta["id"]]
    assert carol.http.get(url).status_code == 404  # the item is internal
    alice.mutate(UPDATE, i=item["id"], v=1, shared=True)
    assert carol.http.get(url).content == data
    assert user("bob", "agent").http.get(url).status_code == 200  # staff read every case

    # a customer's own upload on a public comment; an internal comment shares nothing
    mine = upload(carol, "screen.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png").json()
    comment = carol.mutate(COMMENT, s=case_id, b="see screenshot", a=[mine["id"]])["comment"]
    assert comment["attachments"][0]["contentType"] == "image/png"
    secret = upload(alice, "secret.txt", b"internal only").json()
    alice.mutate(COMMENT, s=case_id, b="internal file", v="INTERNAL", a=[secret["id"]])
    assert carol.http.get(secret["url"]).status_code == 404
    assert alice.http.get(mine["url"]).status_code == 200

    # detaching a file or deleting its comment ends what the reference granted
    assert alice.mutate(UPDATE, i=item["id"], v=2, a=[])["item"]["attachments"] == []
    assert carol.http.get(url).status_code == 404
    shown = upload(alice, "public.txt", b"for the customer").json()
    public = alice.mutate(COMMENT, s=case_id, b="here you go", a=[shown["id"]])["comment"]
    assert carol.http.get(shown["url"]).content == b"for the customer"
    alice.gql("mutation($c: ID!) { commentDelete(input: {commentId: $c}) { errors { code } } }", c=public["id"])
    assert carol.http.get(shown["url"]).status_code == 404

    # other tenants, other customers and anonymous callers get nothing
    mallory = user("mallory", "admin", tenant_id="other-" + alice.tenant)
    assert mallory.http.get(url).status_code == 404
    assert user("dave", "customer").http.get(url).status_code == 404
    assert httpx.get(f"{hub.url}{url}").status_code == 401
    assert httpx.post(f"{hub.url}/attachments", files={"file": ("a.txt", b"x", "text/plain")}).status_code == 401


def test_attachment_ids_must_be_usable_by_the_caller(user: Callable[..., Client]) -> None:
    carol, alice = user("carol", "customer"), user("alice", "agent")
    mallory = user("mallory", "agent", tenant_id="other-" + alice.tenant)
    case_id = carol.mutate(CREATE_CASE, s="Attachment ids")["case"]["id"]
    theirs = upload(mallory, "x.txt", b"other tenant").json()["id"]
    staffs = upload(alice, "y.txt", b"internal").json()["id"]
    for client, ids in ((alice, ["att_000000000000000000000000"]), (alice, [theirs]), (carol, [staffs])):
        error = client.mutate_error(COMMENT, s=case_id, b="with file", a=ids)
        assert (error["code"], error["field"]) == ("INVALID", "attachmentIds")
    error = alice.mutate_error(ADD, c=case_id, k="DOCUMENT", t="doc", a=[theirs])
    assert (error["code"], error["field"]) == ("INVALID", "attachmentIds")
    assert workspace(alice, case_id) == []
    assert alice.gql("query($s: ID!) { thread(id: $s) { comments { totalCount } } }", s=case_id)[
        "thread"]["comments"]["totalCount"] == 0


def test_upload_size_and_type_limits(hub: HubProcess, user: Callable[..., Client]) -> None:
    alice = user("alice", "agent")
    limit = 10_000_000  # HUB_MAX_UPLOAD_BYTES default
    too_big = upload(alice, "big.bin", b"\0" * (limit + 1), "application/octet-stream")
    assert too_big.status_code == 413
    way_too_big = upload(alice, "huge.bin", b"\0" * (limit + 1_000_000), "application/octet-stream")
    assert way_too_big.status_code == 413
    html = upload(alice, "page.html", b"<script>alert(1)</script>", "text/html")
    assert html.status_code == 415 and html.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert upload(alice, "empty.txt", b"").status_code == 400
    assert alice.http.post("/attachments", data={"note": "no file"}).status_code == 400
    assert alice.http.post("/attachments", content=b"raw", headers={"content-type": "text/plain"}).status_code == 400
    exact = upload(alice, "exact.bin", b"\1" * limit, "application/octet-stream")
    assert exact.status_code == 201 and exact.json()["size"] == limit
    assert len(alice.http.get(exact.json()["url"]).content) == limit


def test_concurrent_writers_serialise(user: Callable[..., Client]) -> None:
    alice = user("alice", "agent")
    case_id = alice.mutate(CREATE_CASE, s="Concurrency")["case"]["id"]
    writers = [user(f"agent{i}", "agent") for i in range(6)]
    with ThreadPoolExecutor(len(writers)) as pool:
        list(pool.map(lambda c: c.mutate(ADD, c=case_id, k="STEP", t=c.sub), writers))
    items = workspace(alice, case_id)
    assert sorted(i["position"] for i in items) == list(range(6))
    # the same expected version from six editors at once: exactly one wins
    target = items[0]["id"]
    with ThreadPoolExecutor(len(writers)) as pool:
        results = list(pool.map(
            lambda c: c.gql(UPDATE, i=target, v=1, body=f"by {c.sub}")["workspaceItemUpdate"], writers))
    winners = [r for r in results if not r["errors"]]
    assert len(winners) == 1 and all(r["errors"][0]["code"] == "CONFLICT" for r in results if r["errors"])
    assert workspace(alice, case_id)[0]["content"] == winners[0]["item"]["content"]
    assert workspace(alice, case_id)[0]["version"] == 2
