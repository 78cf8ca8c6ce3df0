"""`collabhub serve | token | seed`."""

from __future__ import annotations

import argparse
import logging
import sys

from hub import auth
from hub.settings import Settings


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings()
    host = args.host or settings.host
    port = args.port or settings.port
    print(f"Collab Hub: GraphiQL at http://{host}:{port}/graphql", flush=True)
    if not settings.mongodb_url:
        print(f"  embedded store, data in {settings.data_dir.resolve()}", flush=True)
    if not settings.redis_url:
        print("  in-process event bus (set HUB_REDIS_URL to run several processes)", flush=True)
    from hub import logging as hub_logging

    hub_logging.configure(settings, uvicorn_level=args.log_level)  # JSON lines (HUB_LOG_FORMAT)
    uvicorn.run(
        "hub.app:create_app", factory=True, host=host, port=port, log_level=args.log_level,
        log_config=None, access_log=False,  # hub.logging formats every line; hub.access logs requests
        ws="websockets-sansio", lifespan="on", proxy_headers=True,
        ws_max_size=settings.ws_max_message_bytes,
        ws_per_message_deflate=settings.ws_per_message_deflate,
    )
    return 0


def token(args: argparse.Namespace) -> int:
    settings = Settings()
    print(auth.mint(
        settings.jwt_secret, sub=args.sub, tenant=args.tenant, roles=args.role, name=args.name,
        skills=args.skill, kcs=args.kcs, ttl=args.ttl, issuer=settings.jwt_issuer,
    ))
    return 0


def seed(args: argparse.Namespace) -> int:
    import asyncio

    from hub.seed import run

    return asyncio.run(run(Settings(), tenant=args.tenant, reset=args.reset))


def export(args: argparse.Namespace) -> int:
    from hub.tenantio import run_export

    return run_export(Settings(), args.tenant, args.out)


def import_(args: argparse.Namespace) -> int:
    from hub.tenantio import run_import

    return run_import(Settings(), args.in_path, args.tenant)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="collabhub", description="Collab Hub")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("serve", help="serve the hub (embedded store unless HUB_MONGODB_URL)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--log-level", default="info")
    p.set_defaults(run=serve)

    p = commands.add_parser("token", help="print a signed JWT for development")
    p.add_argument("--sub", required=True, help="user id")
    p.add_argument("--role", action="append", required=True, choices=sorted(auth.ROLES))
    p.add_argument("--tenant", required=True)
    p.add_argument("--name")
    p.add_argument("--skill", action="append", default=[])
    p.add_argument("--kcs", choices=auth.KCS_LEVELS)
    p.add_argument("--ttl", type=int, default=8 * 3600, help="seconds")
    p.set_defaults(run=token)

    p = commands.add_parser("seed", help="create a demo tenant")
    p.add_argument("--tenant", default="demo")
    p.add_argument("--reset", action="store_true", help="delete the tenant's data first")
    p.set_defaults(run=seed)

    p = commands.add_parser("export", help="write a tenant as JSON lines (hub/tenantio.py)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--out", required=True, help="file, or - for stdout")
    p.set_defaults(run=export)

    p = commands.add_parser("import", help="load an export into an empty tenant")
    p.add_argument("--in", dest="in_path", required=True)
    p.add_argument("--tenant", help="import under this tenant name (default: the exported one)")
    p.set_defaults(run=import_)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.command in ("seed", "export", "import") else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
