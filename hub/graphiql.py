"""The GraphiQL page at `GET /graphql` and the example front-ends served in dev mode.

The page (`static/graphiql/index.html`) is GraphiQL with a token bar (the token goes into the
`Authorization` header and the `connection_init` payload) and one tab per domain, preloaded from
`static/graphiql/examples/NN-name.graphql` with the variables of the sibling `NN-name.json`.
`tests/test_examples.py` validates every example against the schema.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from hub.settings import Settings

STATIC = Path(__file__).resolve().parent / "static" / "graphiql"
EXAMPLES_DIR = STATIC / "examples"
# `examples/` of the repository (absent from an installed wheel or a slim image: nothing mounted)
FRONT_ENDS = Path(__file__).resolve().parent.parent / "examples"


@dataclass(frozen=True)
class Example:
    """One GraphiQL tab: a document of named operations and variables for them."""

    title: str
    query: str
    variables: str


def examples() -> list[Example]:
    """Every tab, in file order."""
    tabs = []
    for path in sorted(EXAMPLES_DIR.glob("*.graphql")):
        variables_path = path.with_suffix(".json")
        variables = json.loads(variables_path.read_text()) if variables_path.exists() else {}
        title = path.stem.split("-", 1)[-1].replace("-", " ").capitalize()
        # no variables: "" (not "{}"), else GraphiQL takes a reloaded tab for a new one
        tabs.append(Example(title, path.read_text(), json.dumps(variables, indent=2) if variables else ""))
    return tabs


@cache
def page() -> str:
    """The GraphiQL page with the examples embedded as JSON."""
    tabs = [asdict(e) for e in examples()]
    # `</` must not appear inside the <script> element that carries the JSON
    data = json.dumps(tabs).replace("</", "<\\/")
    return (STATIC / "index.html").read_text().replace("__HUB_EXAMPLES__", data)


def dev_routes(settings: Settings) -> list[BaseRoute]:
    """`/widget/` and `/forum/` (the example front-ends), outside production only."""
    if settings.production:
        return []
    routes: list[BaseRoute] = []
    for name in ("widget", "forum"):
        directory = FRONT_ENDS / name
        if directory.is_dir():
            routes.append(Mount(f"/{name}", StaticFiles(directory=directory, html=True), name=name))
    return routes

