"""`schema/schema.graphql` is what clients generate code from: it must be the running schema."""

from __future__ import annotations

import difflib

import pytest
from graphql import GraphQLObjectType, build_schema

from hub.settings import Settings
from schema import build
from tests.harness import ROOT

SDL = ROOT / "schema" / "schema.graphql"

# The root fields API.md fixes (clients and acceptance checks use these names).
CONTRACT = {
    "Query": {"viewer", "case", "cases", "article", "articles", "thread", "search", "suggestedArticles",
              "activity", "presence", "experts", "chatRoom", "chatRooms", "notifications", "forumThreads",
              "forumThread", "ideas", "idea", "knowledgeMetrics", "supportMetrics"},
    "Mutation": {"caseCreate", "caseUpdate", "caseAssign", "caseSetStatus", "caseAddParticipant", "caseFollow",
                 "caseUnfollow", "commentAdd", "commentEdit", "commentDelete", "workspaceItemAdd",
                 "workspaceItemUpdate", "presenceUpdate", "presenceLeave", "chatRoomCreate", "chatMessageSend",
                 "chatTyping", "chatMarkRead", "swarmRequest", "swarmJoin", "swarmLeave", "remoteSessionCreate",
                 "remoteSessionJoin", "remoteSessionEnd", "remoteSignalSend", "articleCreate", "articleUpdate",
                 "articleSetState", "articleRevert", "articleRate", "articleFeedbackAdd", "articleFeedbackResolve",
                 "articleEditPropose", "articleEditDecide", "caseLinkArticle", "articleCaptureFromCase",
                 "selfServiceStart", "selfServiceRecord", "selfServiceEscalate", "forumQuestionPost",
                 "forumAnswerPost", "forumAnswerAccept", "forumAnswerPromote", "ideaSubmit", "ideaVote",
                 "ideaSetStatus", "ideaLinkCase", "notificationMarkRead"},
    "Subscription": {"caseActivity", "articleActivity", "notificationReceived", "chatEvents", "presenceChanged",
                     "remoteSignals"},
}


def current_sdl() -> str:
    """What `scripts/export-schema` writes (the schema as served outside `HUB_ENV=test`)."""
    return build(Settings(env="development")).as_str().rstrip() + "\n"


def test_committed_sdl_matches_the_running_schema() -> None:
    committed = SDL.read_text() if SDL.exists() else ""
    current = current_sdl()
    if committed != current:
        diff = "".join(difflib.unified_diff(
            committed.splitlines(keepends=True), current.splitlines(keepends=True),
            "schema/schema.graphql (committed)", "schema (code)", n=1))
        pytest.fail("schema/schema.graphql is out of date with the code: run `scripts/export-schema` and "
                    f"commit the result.\n{diff[:4000]}", pytrace=False)


def test_committed_sdl_builds_and_keeps_the_public_contract() -> None:
    # given the SDL a TypeScript client would generate its types from
    schema = build_schema(SDL.read_text())

    # then every root field API.md names is in it
    for root, names in CONTRACT.items():
        type_ = schema.get_type(root)
        assert isinstance(type_, GraphQLObjectType), root
        missing = names - set(type_.fields)
        assert not missing, f"{root} lacks {sorted(missing)}"
    # and the test-only debugging fields are not
    query = schema.query_type
    assert query is not None and "_debugFail" not in query.fields
