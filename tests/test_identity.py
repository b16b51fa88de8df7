"""The CLI's identity: an API token from the environment or a private token file, authenticated
against the audit store; a name on the command line is not proof."""

import os

import pytest

from ipvalue.audit import add_user
from ipvalue.identity import IdentityError, command_identity


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("IPVALUE_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    monkeypatch.delenv("IPVALUE_TOKEN", raising=False)
    monkeypatch.setenv("IPVALUE_TOKEN_FILE", str(tmp_path / "no-token"))
    return tmp_path / "audit.db"


def test_a_token_authenticates_and_the_role_is_checked(store, monkeypatch):
    token = add_user("wang.li", "reviewer", store)
    monkeypatch.setenv("IPVALUE_TOKEN", token)
    assert command_identity(store, roles=("reviewer",)).name == "wang.li"
    with pytest.raises(IdentityError, match="has role 'reviewer'; this act needs role validator"):
        command_identity(store, roles=("validator",))


def test_without_a_token_or_with_a_bad_one_the_command_is_refused(store, monkeypatch):
    add_user("wang.li", "officer", store)
    with pytest.raises(IdentityError, match="No API token"):
        command_identity(store)
    monkeypatch.setenv("IPVALUE_TOKEN", "ipv_not-a-real-token")
    with pytest.raises(IdentityError, match="is not valid for this audit store"):
        command_identity(store)


def test_a_token_file_others_can_read_is_refused(store, tmp_path, monkeypatch):
    token = add_user("wang.li", "officer", store)
    path = tmp_path / "token"
    path.write_text(token)
    monkeypatch.setenv("IPVALUE_TOKEN_FILE", str(path))
    os.chmod(path, 0o644)
    with pytest.raises(IdentityError, match="can be read by other users"):
        command_identity(store)
    os.chmod(path, 0o600)
    assert command_identity(store).role == "officer"
