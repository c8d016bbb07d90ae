"""Claims → Principal: what each claim shape grants, and that malformed input grants nothing."""
from __future__ import annotations

import json

import pytest

from chalicelib.auth.principal import (
    EDITOR,
    LOCAL_UNAUTHENTICATED,
    MAX_CLAIM_ENTRIES,
    VIEWER,
    ClaimRules,
    Principal,
    principal_from_claims,
)
from chalicelib.errors import Unauthorized

RULES = ClaimRules()


def claims(**extra):
    return {"sub": "user-1", "exp": 1_900_000_000, **extra}


def test_projects_claim_object_grants_its_roles():
    principal = principal_from_claims(claims(projects={"proj-123": "editor", "proj-9": "viewer"}), RULES)

    assert principal.subject == "user-1"
    assert dict(principal.roles) == {"proj-123": EDITOR, "proj-9": VIEWER}
    assert principal.admin is False
    assert principal.expires_at == 1_900_000_000
    assert principal.can_read("proj-123") and principal.can_write("proj-123")
    assert principal.can_read("proj-9") and not principal.can_write("proj-9")
    assert not principal.can_read("proj-other") and not principal.can_write("proj-other")


def test_projects_claim_as_json_string_is_parsed():
    # Cognito custom attributes are strings.
    rules = ClaimRules(projects_claim="custom:projects")
    principal = principal_from_claims(claims(**{"custom:projects": json.dumps({"proj-1": "viewer"})}), rules)

    assert dict(principal.roles) == {"proj-1": VIEWER}


@pytest.mark.parametrize("value", ["{not json", "[\"proj-1\"]", "\"editor\"", 42, ["proj-1", "editor"], None])
def test_unusable_projects_claim_grants_nothing(value):
    principal = principal_from_claims(claims(projects=value), RULES)

    assert dict(principal.roles) == {} and principal.admin is False


def test_cognito_groups_grant_project_roles():
    groups = ["project:proj-123:editor", "project:proj-9:viewer", "unrelated", "project:proj-7:owner"]
    principal = principal_from_claims(claims(**{"cognito:groups": groups}), RULES)

    assert dict(principal.roles) == {"proj-123": EDITOR, "proj-9": VIEWER}
    assert principal.admin is False


def test_admin_group_makes_admin():
    principal = principal_from_claims(claims(**{"cognito:groups": ["admin"]}), RULES)

    assert principal.admin is True
    assert principal.can_read("any-project") and principal.can_write("any-project")


def test_star_admin_in_projects_claim_makes_admin():
    assert principal_from_claims(claims(projects={"*": "admin"}), RULES).admin is True
    # "*" is not a project id: any other role on it grants nothing.
    other = principal_from_claims(claims(projects={"*": "editor"}), RULES)
    assert other.admin is False and dict(other.roles) == {}


def test_admin_is_not_granted_by_a_project_role_named_admin():
    principal = principal_from_claims(claims(projects={"proj-1": "admin"}, **{"cognito:groups": ["project:p:admin"]}),
                                      RULES)

    assert principal.admin is False and dict(principal.roles) == {}


def test_configured_claim_names_are_the_ones_read():
    rules = ClaimRules(projects_claim="tenants", groups_claim="groups", admin_group="platform-admins",
                       group_prefix="team:")
    principal = principal_from_claims(
        claims(tenants={"a": "viewer"}, groups=["team:b:editor", "platform-admins"],
               projects={"c": "editor"}, **{"cognito:groups": ["admin", "project:d:editor"]}),
        rules,
    )

    assert dict(principal.roles) == {"a": VIEWER, "b": EDITOR}
    assert principal.admin is True


@pytest.mark.parametrize("first, second", [("viewer", "editor"), ("editor", "viewer")])
def test_highest_role_wins_across_both_claims(first, second):
    principal = principal_from_claims(
        claims(projects={"proj-1": first}, **{"cognito:groups": [f"project:proj-1:{second}"]}), RULES)

    assert principal.roles["proj-1"] == EDITOR


def test_unknown_roles_and_malformed_ids_are_ignored():
    projects = {
        "proj-ok": "viewer",
        "Editor-case": "Editor",          # roles are exact
        "-starts-with-dash": "editor",
        "has space": "editor",
        "x" * 101: "editor",              # over 100 characters
        "proj:colon": "editor",
        "proj-list": ["editor"],
        "proj-none": None,
    }
    groups = ["project::editor", "project:bad id:editor", "project:proj-g", 17, None, {"project": "x"}]
    principal = principal_from_claims(claims(projects=projects, **{"cognito:groups": groups}), RULES)

    assert dict(principal.roles) == {"proj-ok": VIEWER}
    assert principal.admin is False


def test_a_giant_claim_is_read_only_up_to_the_cap():
    projects = {f"p{i}": "viewer" for i in range(MAX_CLAIM_ENTRIES + 500)}
    groups = [f"project:g{i}:editor" for i in range(MAX_CLAIM_ENTRIES + 500)] + ["admin"]
    principal = principal_from_claims(claims(projects=projects, **{"cognito:groups": groups}), RULES)

    assert len([p for p in principal.roles if p.startswith("p")]) == MAX_CLAIM_ENTRIES
    assert len([p for p in principal.roles if p.startswith("g")]) == MAX_CLAIM_ENTRIES
    assert principal.admin is False  # the admin group sat past the cap


@pytest.mark.parametrize("sub", [None, "", "   ", 42])
def test_missing_subject_is_unauthorized(sub):
    body = {"projects": {"proj-1": "editor"}}
    if sub is not None:
        body["sub"] = sub
    with pytest.raises(Unauthorized) as err:
        principal_from_claims(body, RULES)

    assert err.value.status == 401 and err.value.field == "Authorization"
    assert "sub" in err.value.message


def test_principal_round_trips_through_json():
    principal = Principal("user-1", {"proj-1": "editor", "proj-2": "viewer"}, admin=False, expires_at=1_900_000_000)

    stored = json.loads(json.dumps(principal.to_dict()))
    restored = Principal.from_dict(stored)

    assert restored == principal
    assert dict(restored.roles) == {"proj-1": "editor", "proj-2": "viewer"}
    assert Principal.from_dict(LOCAL_UNAUTHENTICATED.to_dict()) == LOCAL_UNAUTHENTICATED


@pytest.mark.parametrize("stored", [
    {"subject": "", "roles": {}},
    {"subject": "u", "roles": {"p": "admin"}},
    {"subject": "u", "roles": ["p"]},
    {"subject": "u", "roles": {}, "admin": "yes"},
    {"subject": "u", "roles": {}, "expires_at": "soon"},
    {"subject": "u", "roles": {}, "rolez": {}},
])
def test_from_dict_refuses_what_it_cannot_trust(stored):
    with pytest.raises(ValueError):
        Principal.from_dict(stored)


def test_principal_roles_cannot_be_changed():
    source = {"proj-1": "viewer"}
    principal = Principal("user-1", source)
    source["proj-1"] = "editor"  # the caller's dict is copied

    assert principal.roles["proj-1"] == "viewer"
    with pytest.raises(TypeError):
        principal.roles["proj-1"] = "editor"  # type: ignore[index]
    assert hash(principal) == hash(Principal("user-1", {"proj-1": "viewer"}))


def test_local_unauthenticated_principal_is_admin():
    assert LOCAL_UNAUTHENTICATED.admin is True
    assert LOCAL_UNAUTHENTICATED.can_write("proj-123")
