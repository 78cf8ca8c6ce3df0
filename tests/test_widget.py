"""The example front-ends in a real browser: Debian's chromium driven by Playwright.

No browser download and no network: the pages come from a hub on 127.0.0.1 and every other
request is aborted (`_offline`). `./scripts/test` installs chromium when it is missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.harness import Client, HubProcess

expect.set_options(timeout=15_000)  # the whole suite shares two cores with the browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

CASE_CREATE = """mutation($subject: String!) { caseCreate(input: {subject: $subject}) {
  errors { code message field } case { id } } }"""
COMMENT = """mutation($id: ID!, $body: String!, $v: Visibility!) {
  commentAdd(input: {subjectId: $id, body: $body, visibility: $v}) { errors { code message field } comment { id } } }"""
PRESENCE = """mutation($id: ID!) { presenceUpdate(input: {resourceId: $id, state: VIEWING}) {
  errors { code message field } ttlSeconds } }"""
HISTORY = """query($stream: ID!) { activity(stream: $stream, first: 100) { edges { node { id seq kind } } } }"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `./scripts/test` installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.route("**/*", _offline)
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()


def _offline(route: Route) -> None:
    """Only the hubs on this machine: anything else would be a network dependency."""
    if re.match(r"^(http|ws)s?://127\.0\.0\.1(:\d+)?/", route.request.url):
        route.continue_()
    else:
        route.abort()


def comment(client: Client, case_id: str, body: str, visibility: str = "PUBLIC") -> None:
    client.mutate(COMMENT, id=case_id, body=body, v=visibility)


def timeline(page: Page) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = page.eval_on_selector_all(
        ".chw-event",
        "els => els.map(e => ({id: e.dataset.eventId, seq: Number(e.dataset.seq), kind: e.dataset.kind,"
        " body: (e.querySelector('.chw-body') || {}).textContent || null}))",
    )
    return items


def test_widget_live_timeline_presence_and_resume_after_hub_restart(
    page: Page, user: Callable[..., Client], spawn_hub: Callable[..., HubProcess],
) -> None:
    # given a customer's case and the widget, served by a hub of its own, open on it
    widget_hub = spawn_hub()
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = carol.mutate(CASE_CREATE, subject="Printer jams <b>daily</b>")["case"]["id"]
    page.goto(f"{widget_hub.url}/widget/#case={case_id}&token={carol.token}")
    widget = page.locator(".chw")
    expect(widget).to_have_attribute("data-state", "live")
    expect(page.locator(".chw-subject")).to_have_text("Printer jams <b>daily</b>")  # text, not markup
    expect(page.locator('.chw-event[data-kind="case.created"]')).to_have_count(1)

    # when staff write a public, an internal, then another public comment
    hostile = '<img src=x onerror="window.__xss = 1">Please send the log'
    comment(alice, case_id, hostile)
    comment(alice, case_id, "INTERNAL: customer is on an old firmware", "INTERNAL")
    comment(alice, case_id, "Thanks, we are on it")

    # then the widget shows both public comments, in order, as text, and never the internal one
    comments = page.locator('.chw-event[data-kind="comment.added"] .chw-body')
    expect(comments).to_have_text([hostile, "Thanks, we are on it"])
    assert "old firmware" not in page.content()
    assert page.evaluate("window.__xss") is None

    # when an agent heartbeats presence on the case: the customer sees an anonymous agent
    alice.mutate(PRESENCE, id=case_id)
    expect(page.locator(".chw-presence")).to_have_text("An agent is viewing")

    # when the widget's hub dies, events are written elsewhere, and a new hub takes its port
    widget.evaluate("el => { window.__firstSeq = Number(el.dataset.lastSeq); }")
    widget_hub.kill()
    expect(widget).to_have_attribute("data-state", "offline")
    comment(alice, case_id, "Written while you were away (1)")
    comment(alice, case_id, "INTERNAL while away", "INTERNAL")
    comment(alice, case_id, "Written while you were away (2)")
    replacement = HubProcess(widget_hub.env, widget_hub.log_path.parent)
    replacement.port = widget_hub.port
    replacement.start()
    try:
        expect(widget).to_have_attribute("data-state", "live", timeout=30_000)
        comment(alice, case_id, "Live again")
        expect(comments).to_have_text([
            hostile, "Thanks, we are on it", "Written while you were away (1)",
            "Written while you were away (2)", "Live again",
        ])
        expect(page.locator(".chw-presence")).to_have_text("An agent is viewing")  # snapshot again
        reconnects = page.evaluate("window.CollabHubWidget.instances[0].reconnects")
    finally:
        replacement.kill()

    # then every public event of the case is shown exactly once, in order
    history = [e["node"] for e in carol.gql(HISTORY, stream=f"case:{case_id}")["activity"]["edges"]]
    shown = timeline(page)
    assert [e["id"] for e in shown] == [e["id"] for e in history]
    assert [e["seq"] for e in shown] == sorted({e["seq"] for e in shown})
    assert reconnects >= 1
    assert "INTERNAL" not in " ".join(e["body"] or "" for e in shown)


def test_widget_resumes_after_dropped_socket_while_events_are_written(
    page: Page, hub: HubProcess, user: Callable[..., Client],
) -> None:
    # given the widget live on a case with some history
    carol, alice = user("carol", "customer"), user("alice", "agent")
    case_id = carol.mutate(CASE_CREATE, subject="Cannot log in")["case"]["id"]
    for n in range(3):
        comment(alice, case_id, f"before {n}")
    page.goto(f"{hub.url}/widget/#case={case_id}&token={carol.token}")
    bodies = page.locator('.chw-event[data-kind="comment.added"] .chw-body')
    expect(bodies).to_have_count(3)

    # when the socket drops (as a network failure would) and events keep coming meanwhile
    widget = page.locator(".chw")
    for n in range(6):
        if n % 2 == 0:
            expect(widget).to_have_attribute("data-state", "live")
            page.evaluate("window.CollabHubWidget.instances[0].dropConnection()")
        comment(alice, case_id, f"during {n}")

    # then, after the reconnects, each event is shown once, in order
    expected = [f"before {n}" for n in range(3)] + [f"during {n}" for n in range(6)]
    expect(bodies).to_have_text(expected)
    expect(widget).to_have_attribute("data-state", "live")
    seqs = [e["seq"] for e in timeline(page)]
    assert seqs == sorted(set(seqs))
    assert page.evaluate("window.CollabHubWidget.instances[0].reconnects") >= 3


def test_widget_refuses_a_case_the_customer_cannot_read(
    page: Page, hub: HubProcess, user: Callable[..., Client],
) -> None:
    # given a case of another customer
    dave, carol = user("dave", "customer"), user("carol", "customer")
    case_id = dave.mutate(CASE_CREATE, subject="Dave's private case")["case"]["id"]

    # when carol opens the widget on it
    page.goto(f"{hub.url}/widget/#case={case_id}&token={carol.token}")

    # then the widget says so and shows nothing of it
    expect(page.locator(".chw")).to_have_attribute("data-state", "failed")
    expect(page.locator(".chw-connection")).to_have_text("This case is not available.")
    assert "Dave's private case" not in page.content()
    expect(page.locator(".chw-event")).to_have_count(0)


ANSWER = """mutation($id: ID!, $body: String!) { forumAnswerPost(input: {threadId: $id, body: $body}) {
  errors { code message field } answer { id } } }"""
ACCEPT = """mutation($id: ID!) { forumAnswerAccept(input: {answerId: $id}) { errors { code message field } } }"""
THREADS = """{ forumThreads(first: 5) { edges { node { id title } } } }"""


def test_forum_page_posts_anonymously_and_shows_the_accepted_answer(
    page: Page, hub: HubProcess, tenant: str, user: Callable[..., Client],
) -> None:
    # given the forum page of a tenant, anonymous
    page.goto(f"{hub.url}/forum/#tenant={tenant}")
    expect(page.locator("#threads")).to_have_attribute("data-loaded", "true")
    expect(page.locator("#threads")).to_have_text("No questions yet: be the first!")

    # when a visitor posts a question with their e-mail
    page.fill("input[name=title]", "Scanner shows <error 42>")
    page.fill("textarea[name=body]", "Every scan ends with error 42.")
    page.fill("input[name=email]", "visitor@example.com")
    page.click("button[type=submit]")

    # then they get a receipt and the thread, with no answer yet
    expect(page.locator("#receipt")).to_contain_text("Reference: case_")
    expect(page.locator("#thread-title")).to_contain_text("Scanner shows <error 42>")
    expect(page.locator("#answers-heading")).to_have_text("No answer yet")

    # when staff answer twice and accept the second answer
    staff = user("sam", "agent")
    (thread,) = [e["node"] for e in staff.gql(THREADS)["forumThreads"]["edges"]]
    staff.mutate(ANSWER, id=thread["id"], body="Try turning it off and on.")
    accepted = staff.mutate(ANSWER, id=thread["id"], body="Update the firmware to 2.1.")["answer"]["id"]
    staff.mutate(ACCEPT, id=accepted)
    page.click("#refresh")

    # then the page shows the thread resolved with the accepted answer first
    expect(page.locator("#thread-view")).to_have_attribute("data-status", "RESOLVED")
    expect(page.locator("#accepted .answer.accepted .answer-body")).to_have_text("Update the firmware to 2.1.")
    expect(page.locator("#answers .answer .answer-body")).to_have_text(["Try turning it off and on."])

    # and the list shows it too
    page.click("#back")
    expect(page.locator("#threads .thread-link")).to_have_text(["Scanner shows <error 42>"])
