"""``ipvalue users add | revoke | list``: the service's API tokens, kept (hashed) in the audit store."""

from __future__ import annotations

import getpass

from ipvalue.cli.exitcodes import EXIT_OK, EXIT_PARTIAL, DeferredChoices


def add_parser(sub) -> None:
    users = sub.add_parser("users", help="service users: API tokens with a role (officer, reviewer, validator, admin)")
    usub = users.add_subparsers(dest="users_command", metavar="USERS_COMMAND", required=True)
    p = usub.add_parser("add", help="issue an API token for NAME (printed once; only its hash is stored); one role per name")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=DeferredChoices(_roles), metavar="ROLE", help="the role: %(choices)s")
    p.add_argument("--audit-db", default=None, help="audit store (default: $IPVALUE_AUDIT_DB or audit/ipvalue-audit.db)")
    p.add_argument("--audit-key", default=None, help="the audit key file (default: $IPVALUE_AUDIT_KEY_FILE)")
    p.set_defaults(func=run_add)
    p = usub.add_parser("revoke", help="revoke every active token of NAME")
    p.add_argument("name")
    p.add_argument("--audit-db", default=None)
    p.add_argument("--audit-key", default=None, help="the audit key file (default: $IPVALUE_AUDIT_KEY_FILE)")
    p.set_defaults(func=run_revoke)
    p = usub.add_parser("list", help="users, roles, when their tokens were issued and revoked")
    p.add_argument("--audit-db", default=None)
    p.set_defaults(func=run_list)


def _roles() -> tuple[str, ...]:
    from ipvalue.audit import ROLES

    return ROLES


def run_add(args) -> int:
    from ipvalue.audit import add_user

    token = add_user(args.name, args.role, args.audit_db, created_by=getpass.getuser(), key_file=args.audit_key)
    print(f"user {args.name} ({args.role}): token (shown once, keep it secret)\n{token}")
    return EXIT_OK


def run_revoke(args) -> int:
    from ipvalue.audit import revoke_user

    n = revoke_user(args.name, args.audit_db, revoked_by=getpass.getuser(), key_file=args.audit_key)
    print(f"revoked {n} token(s) of {args.name}")
    return EXIT_OK if n else EXIT_PARTIAL


def run_list(args) -> int:
    from ipvalue.audit import list_users

    print(list_users(args.audit_db).to_string(index=False))
    return EXIT_OK
