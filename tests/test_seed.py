"""`collabhub seed`, `collabhub export` / `collabhub import`: run as real subprocesses against the test
store, then read the results through the shared hub's GraphQL API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.harness import ROOT, Client, HubProcess, new_tenant


def collabhub(hub_env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **hub_env, "HUB_WEBHOOKS_ENABLED": "false"}
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def edges(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["node"] for e in data["edges"]]


def test_seed_builds_a_realistic_demo_tenant(hub: HubProcess, hub_env: dict[str, str],
                                             user: Callable[..., Client]) -> None:
    # when
    tenant = new_tenant()
    done = collabhub(hub_env, "seed", "--tenant", tenant)
    # then it reports progress and what it made
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[##############################]" in done.stderr and "20 cases" in done.stdout
    alice = user("alice", "agent", tenant_id=tenant, kcs="contributor")
    carol = user("carol", "customer", tenant_id=tenant)
    # cases in every status (20 + one per forum question), with public and internal comments and workspace
    cases = edges(alice.gql("""{ cases(first: 50) { edges { node { id subject status
      comments(first: 4) { edges { node { visibility } } } workspace { kind } linkedArticles { id } } } } }"""
    )["cases"])
    assert len(cases) == 25
    assert set(Counter(c["status"] for c in cases)) == {"NEW", "OPEN", "PENDING", "SOLVED", "CLOSED"}
    visibilities = {e["visibility"] for c in cases for e in edges(c["comments"])}
    assert visibilities == {"PUBLIC", "INTERNAL"}
    assert {w["kind"] for c in cases for w in c["workspace"]} >= {"STEP", "LOG", "RESULT"}
    assert sum(len(c["linkedArticles"]) for c in cases) >= 10
    vpn = next(c for c in cases if c["subject"] == "VPN drops every 10 minutes")
    # the customer sees their own cases, public comments only, and a real event history
    mine = edges(carol.gql("{ cases(first: 100) { edges { node { id } } } }")["cases"])
    assert vpn["id"] in {c["id"] for c in mine} and len(mine) < len(cases)
    seen = carol.gql("""query($id: ID!) { case(id: $id) { comments { edges { node { visibility } } } } }""",
                     id=vpn["id"])["case"]["comments"]
    assert {e["visibility"] for e in edges(seen)} == {"PUBLIC"}
    kinds = [e["kind"] for e in edges(alice.gql("""query($s: ID!) { activity(stream: $s, first: 100) {
      edges { node { kind seq } } } }""", s=f"case:{vpn['id']}")["activity"])]
    assert kinds[0] == "case.created" and {"case.assigned", "comment.added", "case.status_changed",
                                           "case.article_linked"} <= set(kinds)
    assert carol.gql("{ notifications { unreadCount } }")["notifications"]["unreadCount"] > 0
    # knowledge: 25 articles + 1 promoted from the forum; published ones for customers, rated, one flagged
    articles = edges(alice.gql("""{ articles(first: 100) { edges { node { title audience state
      helpfulCount notHelpfulCount flagged } } } }""")["articles"])
    assert len(articles) == 26
    published = edges(carol.gql("{ articles(first: 100) { edges { node { id } } } }")["articles"])
    assert len(published) == sum(a["audience"] == "EXTERNAL" and a["state"] == "VALIDATED" for a in articles)
    assert 10 <= len(published) < len(articles)
    assert sum(a["helpfulCount"] for a in articles) >= 20
    assert [a["title"] for a in articles if a["flagged"]] == ["Export contacts to CSV"]
    # forum threads with answers; one accepted answer promoted to an article
    threads = edges(alice.gql("""{ forumThreads(first: 20) { edges { node { title answerCount
      acceptedAnswer { id } promotedArticle { id } } } } }""")["forumThreads"])
    assert len(threads) == 5 and sum(t["answerCount"] for t in threads) >= 5
    assert sum(t["acceptedAnswer"] is not None for t in threads) == 3
    assert sum(t["promotedArticle"] is not None for t in threads) == 1
    # ideas with votes and statuses; chat rooms
    ideas = edges(carol.gql("{ ideas(first: 20) { edges { node { title votes status } } } }")["ideas"])
    assert len(ideas) == 6 and max(i["votes"] for i in ideas) == 5
    assert {i["status"] for i in ideas} == {"NEW", "UNDER_REVIEW", "PLANNED", "IN_PROGRESS", "SHIPPED", "DECLINED"}
    rooms = edges(user("erin", "expert", tenant_id=tenant).gql(
        "{ chatRooms { edges { node { name lastMessage { body } } } } }")["chatRooms"])
    assert {r["name"] for r in rooms} == {"Tier 2 huddle", "VPN follow-up"}
    # and seeding the same tenant again is refused without touching it
    again = collabhub(hub_env, "seed", "--tenant", tenant)
    assert again.returncode == 1 and "already has data" in again.stderr and "--reset" in again.stderr
    assert len(edges(alice.gql("{ cases(first: 100) { edges { node { id } } } }")["cases"])) == 25


CASE = """mutation($s: String!) { caseCreate(input: {subject: $s, description: "d", customerId: "carol"}) {
  case { id } errors { code } } }"""
COMMENT = """mutation($id: ID!, $b: String!, $v: Visibility!, $a: [ID!]) {
  commentAdd(input: {subjectId: $id, body: $b, visibility: $v, attachmentIds: $a}) {
  comment { id } errors { code } } }"""
READ = """query($id: ID!) { case(id: $id) { subject status workspace { title content }
  comments { edges { node { body visibility author { id } attachments { id filename size } } } } } }"""
HISTORY = """query($s: ID!) { activity(stream: $s, first: 100) { edges { node { seq kind visibility summary
  data } } } }"""


def test_export_import_round_trip(hub: HubProcess, hub_env: dict[str, str], user: Callable[..., Client],
                                  tenant: str, tmp_path: Path) -> None:
    # given a tenant with a case, comments (one with an uploaded file), a workspace item and an article
    alice, carol = user("alice", "agent"), user("carol", "customer")
    carol.gql("{ viewer { id } }")
    case_id = alice.mutate(CASE, s="Round trip")["case"]["id"]
    upload = alice.http.post("/attachments", files={"file": ("trace.log", b"line 1\nline 2\n" * 500, "text/plain")})
    assert upload.status_code in (200, 201), upload.text
    attachment = upload.json()
    alice.mutate(COMMENT, id=case_id, b="See the trace", v="PUBLIC", a=[attachment["id"]])
    alice.mutate(COMMENT, id=case_id, b="internal note", v="INTERNAL", a=None)
    carol.mutate(COMMENT, id=case_id, b="thanks", v="PUBLIC", a=None)
    alice.mutate("""mutation($id: ID!) { workspaceItemAdd(input: {caseId: $id, kind: STEP, title: "Step 1",
      content: "Restart"}) { item { id } errors { code } } }""", id=case_id)
    alice.mutate("""mutation { articleCreate(input: {title: "Exported article", issue: "i"}) {
      article { id } errors { code } } }""")
    before = alice.gql(READ, id=case_id)["case"]
    history = edges(alice.gql(HISTORY, s=f"case:{case_id}")["activity"])
    # when exported and imported under a new name
    out = tmp_path / "tenant.jsonl"
    exported = collabhub(hub_env, "export", "--tenant", tenant, "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["tenant"] == tenant and json.loads(lines[-1])["end"] is True
    assert {json.loads(line)["c"] for line in lines[1:-1]} >= {"cases", "comments", "events", "counters",
                                                              "uploads.files", "uploads.chunks"}
    copy = new_tenant()
    imported = collabhub(hub_env, "import", "--in", str(out), "--tenant", copy)
    assert imported.returncode == 0, imported.stderr
    # then the same data reads back through the API (new ids, same content)
    alice2, carol2 = user("alice", "agent", tenant_id=copy), user("carol", "customer", tenant_id=copy)
    (case2,) = edges(alice2.gql("{ cases { edges { node { id } } } }")["cases"])
    assert case2["id"] != case_id
    after = alice2.gql(READ, id=case2["id"])["case"]
    for comment in edges(after["comments"]):
        for item in comment["attachments"]:
            item.pop("id")
    for comment in edges(before["comments"]):
        for item in comment["attachments"]:
            item.pop("id")
    assert after == before
    shared = edges(carol2.gql(READ, id=case2["id"])["case"]["comments"])
    assert [c["body"] for c in shared] == [c["body"] for c in edges(before["comments"])
                                           if c["visibility"] == "PUBLIC"]
    (file_id,) = [a["id"] for c in edges(alice2.gql(READ, id=case2["id"])["case"]["comments"])
                  for a in c["attachments"]]
    download = alice2.http.get(f"/attachments/{file_id}")
    assert download.status_code == 200 and download.content == b"line 1\nline 2\n" * 500
    history2 = edges(alice2.gql(HISTORY, s=f"case:{case2['id']}")["activity"])
    assert [(e["seq"], e["kind"], e["visibility"], e["summary"]) for e in history2] == [
        (e["seq"], e["kind"], e["visibility"], e["summary"]) for e in history]
    assert history2[0]["data"]["subject"] == "Round trip"
    # the stream's seq counter continued, not restarted
    alice2.mutate(COMMENT, id=case2["id"], b="after import", v="PUBLIC", a=None)
    last = edges(alice2.gql(HISTORY, s=f"case:{case2['id']}")["activity"])[-1]
    assert last["seq"] == history[-1]["seq"] + 1 and last["kind"] == "comment.added"
    # the original tenant is untouched
    original = alice.gql(READ, id=case_id)["case"]
    for comment in edges(original["comments"]):
        for item in comment["attachments"]:
            item.pop("id")
    assert original == before
    assert len(edges(alice.gql(HISTORY, s=f"case:{case_id}")["activity"])) == len(history)
    articles = edges(alice2.gql("{ articles { edges { node { title } } } }")["articles"])
    assert [a["title"] for a in articles] == ["Exported article"]
    # importing again into a tenant that has data is refused
    again = collabhub(hub_env, "import", "--in", str(out), "--tenant", copy)
    assert again.returncode == 1 and "not empty" in again.stderr


def test_import_refuses_bad_files_and_leaves_nothing_half_written(
    hub_env: dict[str, str], user: Callable[..., Client], tenant: str, tmp_path: Path
) -> None:
    alice = user("alice", "agent")
    user("carol", "customer").gql("{ viewer { id } }")
    alice.mutate(CASE, s="one")
    alice.mutate(CASE, s="two")
    out = tmp_path / "t.jsonl"
    assert collabhub(hub_env, "export", "--tenant", tenant, "--out", str(out)).returncode == 0
    lines = out.read_text().splitlines()
    # truncated
    (tmp_path / "cut.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    cut = collabhub(hub_env, "import", "--in", str(tmp_path / "cut.jsonl"), "--tenant", new_tenant())
    assert cut.returncode == 1 and "truncated" in cut.stderr
    # a document that cannot be inserted half-way through: what was written is removed again
    records = [json.loads(line) for line in lines[1:-1]]
    case_line = next(line for line, r in zip(lines[1:-1], records, strict=True) if r["c"] == "cases")
    body = [*lines[:-1], case_line]
    counts = json.loads(lines[-1])["counts"]
    counts["cases"] += 1
    body.append(json.dumps({"end": True, "counts": counts}))
    (tmp_path / "dup.jsonl").write_text("\n".join(body) + "\n")
    target = new_tenant()
    failed = collabhub(hub_env, "import", "--in", str(tmp_path / "dup.jsonl"), "--tenant", target)
    assert failed.returncode == 1 and "nothing was kept" in failed.stderr, failed.stderr[-2000:]
    assert user("alice", "agent", tenant_id=target).gql("{ cases { edges { node { id } } } }")["cases"]["edges"] == []
