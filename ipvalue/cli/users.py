"""``ipvalue users add | revoke | list``: the service's API tokens, kept (hashed) in the audit store.

Admins manage users: once the store holds an active admin, these commands need an admin's API
token (``$IPVALUE_TOKEN`` or the token file, :mod:`ipvalue.identity`); the first admin of a new
store is created without one (bootstrap), recorded with the operating-system user who ran it.
"""

from __future__ import annotations

from ipvalue.cli.exitcodes import EXIT_OK, EXIT_PARTIAL, DeferredChoices

#: The branch of a user added without ``--branch`` (ipvalue.audit.DEFAULT_BRANCH, kept here so the parser imports no library).
DEFAULT_BRANCH = "head-office"


def add_parser(sub) -> None:
    users = sub.add_parser("users", help="service users: API tokens with a role (officer, reviewer, validator, admin) and a branch")
    usub = users.add_subparsers(dest="users_command", metavar="USERS_COMMAND", required=True)
    p = usub.add_parser("add", help="issue an API token for NAME (printed once; only its hash is stored); one role and one branch per name")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=DeferredChoices(_roles), metavar="ROLE", help="the role: %(choices)s")
    p.add_argument("--branch", default=DEFAULT_BRANCH, help=f"the branch whose applications the user sees and acts on (default {DEFAULT_BRANCH}); "
                                                            "lower-case letters, digits, '.', '_', '-'")
    p.add_argument("--audit-db", default=None, help="audit store (default: $IPVALUE_AUDIT_DB or audit/ipvalue-audit.db)")
    p.add_argument("--audit-key", default=None, help="the audit key file (default: $IPVALUE_AUDIT_KEY_FILE)")
    p.set_defaults(func=run_add)
    p = usub.add_parser("revoke", help="revoke every active token of NAME")
    p.add_argument("name")
    p.add_argument("--audit-db", default=None)
    p.add_argument("--audit-key", default=None, help="the audit key file (default: $IPVALUE_AUDIT_KEY_FILE)")
    p.set_defaults(func=run_revoke)
    p = usub.add_parser("list", help="users, roles, branches, when their tokens were issued and revoked")
    p.add_argument("--audit-db", default=None)
    p.add_argument("--audit-key", default=None, help="the audit key file (default: $IPVALUE_AUDIT_KEY_FILE)")
    p.set_defaults(func=run_list)


def _roles() -> tuple[str, ...]:
    from ipvalue.audit import ROLES

    return ROLES


def acting_admin(store, key_file=None) -> str:
    """Who manages users: an authenticated admin once the store has one (else the bootstrap, by
    the operating-system user). Raises :class:`~ipvalue.identity.IdentityError` otherwise."""
    from ipvalue.audit import list_users, store_exists
    from ipvalue.identity import command_identity, os_user

    present = list_users(store) if store_exists(store) else None
    if present is None or not ((present["role"] == "admin") & present["revoked_at"].isna()).any():
        return f"{os_user()} (os user; bootstrap: no admin yet)"
    who = command_identity(store, roles=("admin",), key_file=key_file)
    return f"{who.name} (admin; os user {os_user()})"


def run_add(args) -> int:
    from ipvalue.audit import add_user

    by = acting_admin(args.audit_db, args.audit_key)
    token = add_user(args.name, args.role, args.audit_db, branch=args.branch, created_by=by, key_file=args.audit_key)
    print(f"user {args.name} ({args.role}, branch {args.branch}): token (shown once, keep it secret)\n{token}")
    return EXIT_OK


def run_revoke(args) -> int:
    from ipvalue.audit import revoke_user

    by = acting_admin(args.audit_db, args.audit_key)
    n = revoke_user(args.name, args.audit_db, revoked_by=by, key_file=args.audit_key)
    print(f"revoked {n} token(s) of {args.name}")
    return EXIT_OK if n else EXIT_PARTIAL


def run_list(args) -> int:
    from ipvalue.audit import list_users

    acting_admin(args.audit_db, args.audit_key)
    print(list_users(args.audit_db).to_string(index=False))
    return EXIT_OK
