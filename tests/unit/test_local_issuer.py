"""The local issuer (key, JWKS server, minting, state file) and `python -m scripts.token`."""
from __future__ import annotations

import json
import stat
import urllib.error
import urllib.request

import jwt
import pytest

from chalicelib.auth.principal import EDITOR, VIEWER
from chalicelib.auth.tokens import TokenVerifier, VerifierConfig
from scripts import local_issuer
from scripts import token as token_cli

AUDIENCE = local_issuer.LOCAL_AUDIENCE
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")


@pytest.fixture
def key_dir(tmp_path):
    return tmp_path / "issuer"


@pytest.fixture
def issuer(key_dir):
    server = local_issuer.serve(0, key_dir)  # port 0: a free port chosen at bind time
    yield server
    server.stop()


def verifier_for(server) -> TokenVerifier:
    return TokenVerifier(VerifierConfig(issuer=server.issuer, audience=AUDIENCE, jwks_url=server.jwks_url))


def get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.headers.get("Content-Type"), json.load(response)


# ---- the key --------------------------------------------------------------------------


def test_key_is_created_once_private_and_reused(key_dir):
    path = local_issuer.ensure_key(key_dir)
    first = path.read_bytes()

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in first
    assert local_issuer.ensure_key(key_dir) == path
    assert path.read_bytes() == first
    assert [p.name for p in key_dir.iterdir()] == [local_issuer.KEY_FILE]  # no temp files left behind


def test_kid_is_the_rfc7638_thumbprint():
    # The example key of RFC 7638 section 3.1 and its published thumbprint.
    rfc_key = {
        "kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjB"
            "ZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8"
            "KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_"
            "xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
    }

    assert local_issuer.thumbprint(rfc_key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_jwks_holds_public_keys_only(key_dir):
    keys = local_issuer.jwks(key_dir)["keys"]

    assert len(keys) == 1
    (key,) = keys
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    assert key["kid"] == local_issuer.thumbprint(key)
    assert not [member for member in PRIVATE_MEMBERS if member in key]


def test_rotation_publishes_the_new_key_and_keeps_the_previous(key_dir):
    old_kid = local_issuer.jwks(key_dir)["keys"][0]["kid"]
    local_issuer.rotate_key(key_dir)
    kids = [key["kid"] for key in local_issuer.jwks(key_dir)["keys"]]

    assert len(kids) == 2 and kids[1] == old_kid and kids[0] != old_kid
    assert not [m for key in local_issuer.jwks(key_dir)["keys"] for m in PRIVATE_MEMBERS if m in key]


# ---- minting --------------------------------------------------------------------------


def test_mint_then_verify_round_trip(issuer, key_dir):
    token = local_issuer.mint("bob", {"proj-1": "viewer", "proj-2": "editor"}, issuer=issuer.issuer,
                              audience=AUDIENCE, ttl_seconds=120, key_dir=key_dir)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})

    assert header["alg"] == "RS256" and header["kid"] == local_issuer.jwks(key_dir)["keys"][0]["kid"]
    assert claims["exp"] - claims["iat"] == 120
    assert "cognito:groups" not in claims
    principal = verifier_for(issuer).verify(token)
    assert dict(principal.roles) == {"proj-1": VIEWER, "proj-2": EDITOR} and principal.admin is False


def test_minted_admin_token_verifies_as_admin(issuer, key_dir):
    token = local_issuer.mint("root", {}, admin=True, issuer=issuer.issuer, audience=AUDIENCE, key_dir=key_dir)

    assert jwt.decode(token, options={"verify_signature": False})["cognito:groups"] == ["admin"]
    assert verifier_for(issuer).verify(token).admin is True


@pytest.mark.parametrize("projects", [{"proj-1": "admin"}, {"proj-1": "owner"}, {"bad id": "viewer"}])
def test_mint_refuses_unknown_roles_and_bad_ids(key_dir, projects):
    with pytest.raises(ValueError):
        local_issuer.mint("x", projects, issuer="http://i", audience=AUDIENCE, key_dir=key_dir)


# ---- the server -----------------------------------------------------------------------


def test_server_serves_jwks_and_discovery_and_404s_the_rest(issuer, key_dir, capfd):
    status, content_type, body = get(issuer.jwks_url)
    assert (status, content_type) == (200, "application/json")
    assert body == local_issuer.jwks(key_dir)

    status, _, discovery = get(issuer.url + local_issuer.OPENID_CONFIGURATION_PATH)
    assert status == 200
    assert discovery["issuer"] == issuer.issuer == f"http://127.0.0.1:{issuer.port}"
    assert discovery["jwks_uri"] == issuer.jwks_url

    with pytest.raises(urllib.error.HTTPError) as err:
        get(issuer.url + "/.well-known/private-key")
    assert err.value.code == 404
    assert capfd.readouterr().err == ""  # no request logging


def test_stop_releases_the_port(key_dir):
    server = local_issuer.serve(0, key_dir)
    url = server.jwks_url
    server.stop()

    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)


# ---- state file -----------------------------------------------------------------------


def test_state_round_trip_and_clear(key_dir):
    with pytest.raises(FileNotFoundError):
        local_issuer.read_state(key_dir)

    local_issuer.write_state(key_dir, "http://127.0.0.1:1", AUDIENCE, "http://127.0.0.1:1/.well-known/jwks.json")
    assert local_issuer.read_state(key_dir) == {
        "issuer": "http://127.0.0.1:1", "audience": AUDIENCE, "jwks_url": "http://127.0.0.1:1/.well-known/jwks.json"}

    local_issuer.clear_state(key_dir)
    with pytest.raises(FileNotFoundError):
        local_issuer.read_state(key_dir)


def test_local_state_is_ignored_by_git():
    assert ".local/" in (local_issuer.ROOT / ".gitignore").read_text().splitlines()
    assert local_issuer.KEY_DIR.is_relative_to(local_issuer.ROOT / ".local")


# ---- python -m scripts.token ----------------------------------------------------------


@pytest.fixture
def running_stack(issuer, key_dir):
    local_issuer.write_state(key_dir, issuer.issuer, AUDIENCE, issuer.jwks_url)
    return issuer


@pytest.fixture(autouse=True)
def no_env_fallbacks(monkeypatch):
    monkeypatch.delenv("PROJECT", raising=False)
    monkeypatch.delenv("ROLE", raising=False)


def run_cli(capsys, *argv):
    code = token_cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_token_cli_prints_one_token_that_verifies(running_stack, key_dir, capsys):
    code, out, _ = run_cli(capsys, "--project", "proj-123", "--role", "viewer", "--key-dir", str(key_dir))

    assert code == 0
    assert out.endswith("\n") and out.count("\n") == 1
    principal = verifier_for(running_stack).verify(out.strip())
    assert principal.subject == "local-user"
    assert dict(principal.roles) == {"proj-123": VIEWER}


def test_token_cli_admin_needs_no_project_and_honours_ttl_and_subject(running_stack, key_dir, capsys):
    code, out, _ = run_cli(capsys, "--role", "admin", "--ttl", "60", "--subject", "ops", "--key-dir", str(key_dir))

    assert code == 0
    principal = verifier_for(running_stack).verify(out.strip())
    assert principal.admin is True and principal.subject == "ops"
    claims = jwt.decode(out.strip(), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 60


def test_token_cli_reads_project_and_role_from_the_environment(running_stack, key_dir, capsys, monkeypatch):
    monkeypatch.setenv("PROJECT", "proj-9")
    monkeypatch.setenv("ROLE", "editor")

    code, out, _ = run_cli(capsys, "--key-dir", str(key_dir))

    assert code == 0
    assert dict(verifier_for(running_stack).verify(out.strip()).roles) == {"proj-9": EDITOR}


def test_token_cli_treats_empty_make_variables_as_unset(running_stack, key_dir, capsys, monkeypatch):
    monkeypatch.setenv("PROJECT", "")
    monkeypatch.setenv("ROLE", "")

    with pytest.raises(SystemExit) as exit_:
        token_cli.main(["--key-dir", str(key_dir)])  # ROLE defaults to editor, which needs a project
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and out == "" and "--project" in err


def test_token_cli_without_a_running_stack_exits_2(key_dir, capsys):
    code, out, err = run_cli(capsys, "--project", "proj-1", "--key-dir", str(key_dir))

    assert code == 2 and out == ""
    assert "make run" in err


def test_token_cli_with_a_stale_state_file_exits_2(key_dir, capsys):
    server = local_issuer.serve(0, key_dir)
    local_issuer.write_state(key_dir, server.issuer, AUDIENCE, server.jwks_url)
    server.stop()  # the stack died without clearing its state

    code, out, err = run_cli(capsys, "--project", "proj-1", "--key-dir", str(key_dir))

    assert code == 2 and out == ""
    assert "does not answer" in err


@pytest.mark.parametrize("argv", [["--role", "owner", "--project", "p"], ["--project", "bad id"],
                                  ["--project", "p", "--ttl", "0"]])
def test_token_cli_refuses_bad_arguments(running_stack, key_dir, capsys, argv):
    try:
        code = token_cli.main([*argv, "--key-dir", str(key_dir)])
    except SystemExit as exit_:
        code = exit_.code
    out, _ = capsys.readouterr()

    assert code == 2 and out == ""
