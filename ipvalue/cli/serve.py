"""``ipvalue serve``: the valuation service (JSON API and officers' page) on uvicorn.

Bound to 127.0.0.1 by default; TLS is the bank's reverse proxy's job (README, "The valuation
service"). With ``--workers N`` uvicorn runs N processes, each loading the models once; they share
the audit store (WAL, queued writers) and the state folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from ipvalue.cli.exitcodes import EXIT_OK, checked


def _port(value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"--port must be 0-65535. Got {value}.")


def _workers(value: int) -> None:
    if not 1 <= value <= 16:
        raise ValueError(f"--workers must be 1-16. Got {value}.")


def _hours(value: float) -> None:
    if not 0 < value <= 24:
        raise ValueError(f"--session-hours must be in (0, 24]. Got {value}.")


def _minutes(value: float) -> None:
    if not 0 < value <= 24 * 60:
        raise ValueError(f"--session-idle-minutes must be in (0, 1440]. Got {value}.")


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="run the valuation service (JSON API + officers' web page); TLS at the bank's proxy")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1; put the bank's TLS proxy in front)")
    p.add_argument("--port", type=checked(_port, int), default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=checked(_workers, int), default=1, help="worker processes (default 1; each loads the models once)")
    p.add_argument("--audit-db", default=None, help="audit store and users: a SQLite file or a postgresql:// URL (default: $IPVALUE_AUDIT_DB or audit/ipvalue-audit.db)")
    p.add_argument("--state-dir", default="service-data", help="uploads and reports (default: service-data)")
    p.add_argument("--model", action="append", default=[], help="registry URI to serve (repeat); default: the renewal and value champions")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI of the registry")
    p.add_argument("--data-dir", default=None, help="public reference data folder")
    p.add_argument("--forwarded-allow-ips", default="127.0.0.1", help="proxies whose X-Forwarded-* headers are trusted (default 127.0.0.1)")
    p.add_argument("--config", default=None, help="the bank's valuation configuration (allowed assumption sets, pledge policies, risk-sharing "
                                                  "schemes, models); default $IPVALUE_CONFIG_DIR/valuation.yaml, else the shipped defaults")
    p.add_argument("--no-docs", action="store_true", help="serve no API documentation (/docs, /redoc, /openapi.json); by default they need a token")
    p.add_argument("--session-hours", type=checked(_hours, float), default=8.0, help="a page session ends this long after sign-in (default 8)")
    p.add_argument("--session-idle-minutes", type=checked(_minutes, float), default=30.0, help="... or after this long unused (default 30)")
    p.set_defaults(func=run)


def run(args) -> int:
    # The web stack (FastAPI, uvicorn, the service) loads only for this command.
    import uvicorn

    from ipvalue.audit import audit_path, is_postgres
    from ipvalue.lending.configuration import BankConfiguration
    from ipvalue.service import ServiceSettings, serving_app
    from ipvalue.tracking import prepare_tracking_store

    store = audit_path(args.audit_db)
    settings = ServiceSettings(audit_db=store if is_postgres(store) else store.resolve(), state_dir=Path(args.state_dir).resolve(), models=tuple(args.model),
                               tracking_uri=args.tracking_uri, data_dir=args.data_dir, config_file=str(Path(args.config).resolve()) if args.config else None,
                               docs=not args.no_docs, session_hours=args.session_hours, session_idle_minutes=args.session_idle_minutes)
    BankConfiguration.load(settings.config_file, pinned=True)  # a bad configuration stops the start (exit 4), not a request
    common = dict(host=args.host, port=args.port, proxy_headers=True, forwarded_allow_ips=args.forwarded_allow_ips, log_level="info")
    if args.workers == 1:
        uvicorn.run(serving_app(settings), **common)
    else:
        # Worker processes share the stores: create and migrate them once here, not N times at once
        # (two processes migrating one new MLflow SQLite store collide).
        prepare_tracking_store(args.tracking_uri)
        os.environ.update(settings.to_env())
        uvicorn.run("ipvalue.service:app_from_env", factory=True, workers=args.workers, **common)
    return EXIT_OK
