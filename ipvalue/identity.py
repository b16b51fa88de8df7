"""Who runs a command: the CLI's identity is an API token, not a name typed on the command line.

``--user NAME`` is not proof of identity. A command that records an act (a valuation, a sign-off,
a promotion) authenticates its user the way the service does: an API token issued by ``ipvalue
users add`` (stored hashed in the audit store), read from ``$IPVALUE_TOKEN`` or from a token file
(``$IPVALUE_TOKEN_FILE``, default ``~/.config/ipvalue/token``) that only its owner may read (mode
0600; a file others can read is refused). The operating-system user running the command is
recorded beside the authenticated name.
"""

from __future__ import annotations

import getpass
import os
import stat
from pathlib import Path

from ipvalue.audit import Identity, authenticate
from ipvalue.exceptions import InputError

ENV_TOKEN = "IPVALUE_TOKEN"
ENV_TOKEN_FILE = "IPVALUE_TOKEN_FILE"
DEFAULT_TOKEN_FILE = Path("~/.config/ipvalue/token")


class IdentityError(InputError):
    """The command's user could not be authenticated (no token, an unknown or revoked token, a
    token file others can read, or a role that may not do the act)."""


def token_from_environment() -> tuple[str | None, str]:
    """The API token (or None) and where it was read from."""
    if os.environ.get(ENV_TOKEN):
        return os.environ[ENV_TOKEN].strip(), f"${ENV_TOKEN}"
    path = Path(os.environ.get(ENV_TOKEN_FILE) or DEFAULT_TOKEN_FILE).expanduser()
    if not path.is_file():
        return None, str(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise IdentityError(f"The token file {path} can be read by other users (mode {stat.S_IMODE(mode):o}). Fix: chmod 600 {path}.")
    return path.read_text(encoding="utf-8").strip(), str(path)


def command_identity(store, *, roles: tuple[str, ...] = (), key_file=None) -> Identity:
    """The authenticated identity of the command's user, for an act that needs one of ``roles``
    (any role when empty).

    Raises
    ------
    IdentityError
        No token, a token the store does not know (or revoked), or a role that may not act.
    """
    token, where = token_from_environment()
    if not token:
        raise IdentityError(f"No API token: this command records who acts. Fix: set ${ENV_TOKEN} or put your token (from 'ipvalue users add') "
                            f"in {where} with mode 0600.")
    who = authenticate(token, store, key_file=key_file)
    if who is None:
        raise IdentityError(f"The API token from {where} is not valid for this audit store (unknown or revoked). Fix: ask an admin for a token "
                            "(ipvalue users add NAME --role ROLE).")
    if roles and who.role not in roles:
        raise IdentityError(f"User {who.name!r} has role {who.role!r}; this act needs role {' or '.join(roles)}.")
    return who


def os_user() -> str:
    """The operating-system user running the command (recorded beside the authenticated name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container)
        return str(os.getuid())
