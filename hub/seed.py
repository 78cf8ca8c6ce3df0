"""`collabhub seed`: a realistic demo tenant built through the public GraphQL operations.

Every change goes through `schema.execute` with a `Context` per demo user (real resolvers, real
store, real events and notifications), so GraphiQL, the widget and the activity streams show
exactly what production traffic would produce. Content is in `hub/seed_data.py`. A tenant that
already has data is refused (exit status 1) unless `--reset` wipes it first.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from hub import tenantio
from hub.auth import Identity
from hub.runtime import Hub
from hub.seed_data import ARTICLES, CASES, CUSTOMERS, FLAGGED, FORUM, IDEAS, PEOPLE, STAFF
from hub.settings import Settings

ARTICLE_CREATE = """mutation($i: ArticleCreateInput!) { articleCreate(input: $i) {
  article { id state } errors { code message field } } }"""
ARTICLE_STATE = """mutation($id: ID!, $s: ArticleState!) { articleSetState(input: {articleId: $id, state: $s}) {
  article { id } errors { code message field } } }"""
ARTICLE_RATE = """mutation($id: ID!, $h: Boolean!, $c: String) { articleRate(input: {articleId: $id, helpful: $h,
  comment: $c}) { article { id flagged } errors { code message field } } }"""
FEEDBACK = """mutation($id: ID!, $k: ArticleFeedbackKind!, $b: String!) { articleFeedbackAdd(input: {articleId: $id,
  kind: $k, body: $b}) { feedback { id } errors { code message field } } }"""
CASE_CREATE = """mutation($i: CaseCreateInput!) { caseCreate(input: $i) { case { id }
  errors { code message field } } }"""
ASSIGN = """mutation($id: ID!, $a: ID) { caseAssign(input: {caseId: $id, assigneeId: $a}) {
  case { id } errors { code message field } } }"""
STATUS = """mutation($id: ID!, $s: CaseStatus!) { caseSetStatus(input: {caseId: $id, status: $s}) {
  case { id } errors { code message field } } }"""
FOLLOW = """mutation($id: ID!) { caseFollow(input: {caseId: $id}) { case { id } errors { code message field } } }"""
COMMENT = """mutation($id: ID!, $b: String!, $v: Visibility!) { commentAdd(input: {subjectId: $id, body: $b,
  visibility: $v}) { comment { id } errors { code message field } } }"""
WORKSPACE = """mutation($id: ID!, $k: WorkspaceItemKind!, $t: String!, $c: String!, $s: Boolean!) {
  workspaceItemAdd(input: {caseId: $id, kind: $k, title: $t, content: $c, shared: $s}) {
  item { id } errors { code message field } } }"""
LINK = """mutation($c: ID!, $a: ID!, $r: CaseLinkRelation!) { caseLinkArticle(input: {caseId: $c, articleId: $a,
  relation: $r}) { case { id } errors { code message field } } }"""
QUESTION = """mutation($t: String!, $b: String!, $g: [String!]) { forumQuestionPost(input: {title: $t, body: $b,
  tags: $g}) { thread { id } errors { code message field } } }"""
ANSWER = """mutation($id: ID!, $b: String!) { forumAnswerPost(input: {threadId: $id, body: $b}) {
  answer { id } errors { code message field } } }"""
ACCEPT = """mutation($id: ID!) { forumAnswerAccept(input: {answerId: $id}) { answer { id }
  errors { code message field } } }"""
PROMOTE = """mutation($id: ID!) { forumAnswerPromote(input: {answerId: $id}) { article { id }
  errors { code message field } } }"""
IDEA = """mutation($t: String!, $b: String!) { ideaSubmit(input: {title: $t, body: $b}) { idea { id }
  errors { code message field } } }"""
VOTE = """mutation($id: ID!) { ideaVote(input: {ideaId: $id}) { idea { id } errors { code message field } } }"""
IDEA_STATUS = """mutation($id: ID!, $s: IdeaStatus!, $n: String!) { ideaSetStatus(input: {ideaId: $id, status: $s,
  note: $n}) { idea { id } errors { code message field } } }"""
ROOM = """mutation($m: [ID!]!, $n: String, $c: ID) { chatRoomCreate(input: {memberIds: $m, name: $n, caseId: $c}) {
  room { id } errors { code message field } } }"""
MESSAGE = """mutation($id: ID!, $b: String!) { chatMessageSend(input: {roomId: $id, body: $b}) { message { id }
  errors { code message field } } }"""

PATHS = {"OPEN": ["OPEN"], "PENDING": ["OPEN", "PENDING"], "SOLVED": ["OPEN", "SOLVED"],
         "CLOSED": ["OPEN", "SOLVED", "CLOSED"], "NEW": []}


class SeedError(RuntimeError):
    """An operation of the seed failed (names the operation and the errors)."""


class Progress:
    """A plain-text progress bar on stderr (one line per stage when not a terminal)."""

    def __init__(self, total: int, width: int = 30) -> None:
        self.total, self.width, self.done, self.stage = total, width, 0, ""
        self.tty = sys.stderr.isatty()

    def step(self, stage: str, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        if self.tty or stage != self.stage:
            filled = self.width * self.done // self.total
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done:>3}/{self.total} {stage:<10}"
            sys.stderr.write(("\r" + bar) if self.tty else (bar + "\n"))
            sys.stderr.flush()
        self.stage = stage

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


class Seeder:
    """Runs operations as demo users against the in-process schema (real resolvers, real store)."""

    def __init__(self, hub: Hub, tenant: str) -> None:
        from schema import build

        self.hub = hub
        self.tenant = tenant
        self.schema = build(hub.settings)
        self.articles: dict[str, str] = {}
        self.cases: list[str] = []
        self.operations = 0

    def identity(self, sub: str) -> Identity:
        name, roles, skills, kcs = PEOPLE[sub]
        return Identity(sub=sub, tenant=self.tenant, roles=frozenset(roles), name=name, skills=tuple(skills),
                        kcs=kcs)

    async def run_as(self, sub: str, query: str, **variables: Any) -> dict[str, Any]:
        from resolvers.context import Context

        context = Context(hub=self.hub, identity=self.identity(sub), client_ip="seed")
        result = await self.schema.execute(query, variable_values=variables, context_value=context)
        self.operations += 1
        if result.errors:
            raise SeedError(f"seed operation failed as {sub}: {[e.message for e in result.errors]}")
        data: dict[str, Any] = result.data or {}
        return data

    async def mutate(self, sub: str, query: str, **variables: Any) -> dict[str, Any]:
        """The payload of a mutation run as `sub`; `SeedError` if it has errors.

        `UNAVAILABLE` (a busy store) is retried a few times: a failed mutation wrote nothing.
        """
        for attempt in range(4):
            (payload,) = (await self.run_as(sub, query, **variables)).values()
            if not any(e["code"] == "UNAVAILABLE" for e in payload["errors"]):
                break
            await asyncio.sleep(0.5 * 2**attempt)
        if payload["errors"]:
            raise SeedError(f"seed mutation failed as {sub}: {payload['errors']} ({variables})")
        result: dict[str, Any] = payload
        return result

    async def people(self, progress: Progress) -> None:
        for sub in PEOPLE:
            await self.run_as(sub, "{ viewer { id } }")
            progress.step("people")

    async def knowledge(self, progress: Progress) -> None:
        for title, issue, env, cause, resolution, tags, audience, state, author in ARTICLES:
            article = (await self.mutate(author, ARTICLE_CREATE, i={
                "title": title, "issue": issue, "environment": env, "cause": cause, "resolution": resolution,
                "tags": tags, "audience": audience}))["article"]
            self.articles[title] = article["id"]
            if article["state"] != state:
                await self.mutate("ed", ARTICLE_STATE, id=article["id"], s=state)
            progress.step("articles")
        published = [t for t, *_, audience, state, _ in ARTICLES if audience == "EXTERNAL" and state == "VALIDATED"]
        for i, title in enumerate(published):
            if title == FLAGGED:
                continue
            for j, who in enumerate(CUSTOMERS[: 1 + i % len(CUSTOMERS)]):
                helpful = (i + j) % 5 != 4
                await self.mutate(who, ARTICLE_RATE, id=self.articles[title], h=helpful,
                                  c=None if helpful else "Did not work for me")
        for who in [*CUSTOMERS, "alice"]:  # five unhelpful votes: flagged for rework
            await self.mutate(who, ARTICLE_RATE, id=self.articles[FLAGGED], h=False, c="The menu has moved")
        await self.mutate("carol", FEEDBACK, id=self.articles["VPN disconnects every few minutes"], k="SUGGESTION",
                          b="Mention that the keep-alive setting needs admin rights.")
        await self.mutate("alice", FEEDBACK, id=self.articles["Linux VPN split tunnelling"], k="GAP",
                          b="Covers Ubuntu only; Fedora uses NetworkManager differently.")
        progress.step("ratings")

    async def support(self, progress: Progress) -> None:
        for n, (customer, subject, description, priority, tags, skills, status, article, assignee) in enumerate(CASES):
            by_customer = n % 3 == 0
            case_input: dict[str, Any] = {"subject": subject, "description": description}
            if not by_customer:  # staff open it for the customer and triage at once
                case_input.update(priority=priority, tags=tags, skills=skills, customerId=customer)
            case_id = (await self.mutate(customer if by_customer else "alice", CASE_CREATE, i=case_input))["case"]["id"]
            self.cases.append(case_id)
            if assignee:
                await self.mutate("sam", ASSIGN, id=case_id, a=assignee)
                worker = assignee
                await self.mutate(worker, COMMENT, id=case_id, v="PUBLIC",
                                  b=f"Hi {PEOPLE[customer][0].split()[0]}, thanks for reporting this. Looking into it.")
                await self.mutate(worker, COMMENT, id=case_id, v="INTERNAL",
                                  b="Checked the account and recent changes; nothing unusual yet. @sam FYI")
                await self.mutate(customer, COMMENT, id=case_id, v="PUBLIC", b="Thanks! It happened again today.")
                if n % 2 == 0:
                    await self.mutate(worker, WORKSPACE, id=case_id, k="STEP", t="Reproduce",
                                      c="1. Sign in\n2. Repeat the customer's steps\n3. Note the error", s=False)
                    await self.mutate(worker, WORKSPACE, id=case_id, k="LOG", t="Client log excerpt",
                                      c="12:01:07 WARN connection reset by peer", s=False)
                if article:
                    relation = "SOLVED_BY" if status in ("SOLVED", "CLOSED") else "REFERENCED"
                    await self.mutate(worker, LINK, c=case_id, a=self.articles[article], r=relation)
                for step in PATHS[status]:
                    await self.mutate(worker, STATUS, id=case_id, s=step)
                if status in ("SOLVED", "CLOSED"):
                    await self.mutate(worker, WORKSPACE, id=case_id, k="RESULT", t="Resolution",
                                      c=f"Resolved following: {article or 'troubleshooting'}", s=True)
            if priority == "URGENT":
                await self.mutate("sam", FOLLOW, id=case_id)
            progress.step("cases")

    async def community(self, progress: Progress) -> None:
        for asker, title, body, tags, answers, accepted, promote in FORUM:
            thread_id = (await self.mutate(asker, QUESTION, t=title, b=body, g=tags))["thread"]["id"]
            answer_ids = [(await self.mutate(who, ANSWER, id=thread_id, b=text))["answer"]["id"]
                          for who, text in answers]
            if accepted is not None:
                await self.mutate(asker, ACCEPT, id=answer_ids[accepted])
                if promote:
                    await self.mutate("ed", PROMOTE, id=answer_ids[accepted])
            progress.step("forum")
        for submitter, title, body, status, note, voters in IDEAS:
            idea_id = (await self.mutate(submitter, IDEA, t=title, b=body))["idea"]["id"]
            for voter in voters:
                await self.mutate(voter, VOTE, id=idea_id)
            if status:
                await self.mutate("sam", IDEA_STATUS, id=idea_id, s=status, n=note)
            progress.step("ideas")

    async def chat(self, progress: Progress) -> None:
        room = (await self.mutate("alice", ROOM, m=["erin", "sam"], n="Tier 2 huddle", c=None))["room"]["id"]
        for who, text in [("alice", "Anyone seen VPN drops on the 5.x client today?"),
                          ("erin", "Yes, NAT keep-alive. Article is linked on Carol's case."),
                          ("sam", "Thanks both, let's keep an eye on the queue.")]:
            await self.mutate(who, MESSAGE, id=room, b=text)
        case_room = (await self.mutate("erin", ROOM, m=["carol"], n="VPN follow-up", c=self.cases[0]))["room"]["id"]
        await self.mutate("erin", MESSAGE, id=case_room, b="Hi Carol, did the keep-alive setting help?")
        await self.mutate("carol", MESSAGE, id=case_room, b="Yes, no drops since yesterday!")
        progress.step("chat")

    async def seed(self) -> None:
        progress = Progress(len(PEOPLE) + len(ARTICLES) + 1 + len(CASES) + len(FORUM) + len(IDEAS) + 1)
        try:
            await self.people(progress)
            await self.knowledge(progress)
            await self.support(progress)
            await self.community(progress)
            await self.chat(progress)
        finally:
            progress.close()


async def run(settings: Settings, tenant: str = "demo", reset: bool = False) -> int:
    """Seed `tenant`; exit status 1 (with a message) when it already has data and not `reset`."""
    # deliveries are the serving processes' job: a short-lived seed must not claim them
    hub = await Hub.start(settings.model_copy(update={"webhooks_enabled": False}))
    try:
        found = await tenantio.has_data(hub.store, tenant)
        if found and not reset:
            print(f"Tenant '{tenant}' already has data (in '{found}'). Run `collabhub seed --tenant {tenant} "
                  f"--reset` to replace it, or seed another tenant with --tenant NAME.", file=sys.stderr)
            return 1
        if found:
            removed = await tenantio.wipe(hub.store, tenant)
            print(f"Removed {removed} documents of tenant '{tenant}'.", file=sys.stderr)
        seeder = Seeder(hub, tenant)
        await seeder.seed()
    except SeedError as exc:
        print(f"Seeding stopped: {exc}", file=sys.stderr)
        return 1
    finally:
        await hub.stop()
    print(f"Seeded tenant '{tenant}': {len(PEOPLE)} people, {len(seeder.articles)} articles, {len(seeder.cases)} "
          f"cases, {len(FORUM)} forum threads, {len(IDEAS)} ideas, 2 chat rooms ({seeder.operations} operations).")
    print("Sign in as anyone of:", ", ".join(f"{uid} ({'/'.join(PEOPLE[uid][1])})" for uid in [*STAFF, *CUSTOMERS]))
    print(f"  e.g. collabhub token --sub alice --role agent --kcs contributor --tenant {tenant}")
    return 0
