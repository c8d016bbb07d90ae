"""Must-show 1 and 5: cfn-lint on every template in infra/ and on what `make package` produces;
the data stores as the issue asks and as the code uses them; the Lambda zip without training
libraries."""
from __future__ import annotations

import zipfile

import pytest
from infra_support import CLOUDFORMATION, chalice_stages, load_template, resolve
from pynamodb.attributes import Attribute

from chalicelib.adapters import tables
from chalicelib.config import Settings
from scripts.package import FORBIDDEN_PACKAGES, LAMBDA_RUNTIME, inspect_zip, lint

TEMPLATES = sorted(CLOUDFORMATION.glob("*.yaml"))
DATA_STORES = CLOUDFORMATION / "data-stores.yaml"


@pytest.mark.parametrize("template", TEMPLATES, ids=[t.name for t in TEMPLATES])
def test_every_infra_template_is_cfn_lint_clean(template):
    assert lint(template) == []


def test_the_packaged_templates_are_cfn_lint_clean(packages):
    for stage, package in packages.items():
        assert lint(package.template_path) == [], stage


def test_every_function_runs_on_the_packaged_runtime(packages):
    for package in packages.values():
        functions = [r for r in package.template["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
        assert functions and {f["Properties"]["Runtime"] for f in functions} == {LAMBDA_RUNTIME}


def test_the_lambda_zip_holds_the_app_and_no_training_library(packages):
    for package in packages.values():
        with zipfile.ZipFile(package.zip_path) as archive:
            names = archive.namelist()
        tops = {n.split("/", 1)[0].removesuffix(".py").split("-", 1)[0].lower() for n in names}
        assert {"app", "chalicelib", "pynamodb", "kubernetes", "rdflib"} <= tops
        assert not tops & set(FORBIDDEN_PACKAGES), tops & set(FORBIDDEN_PACKAGES)
        assert "trainer" not in tops
        assert package.zip.forbidden == [] and package.zip.zipped_bytes < 50 * 1024 * 1024


def test_the_zip_check_catches_a_training_library(tmp_path):
    planted = tmp_path / "deployment.zip"
    with zipfile.ZipFile(planted, "w") as archive:
        archive.writestr("app.py", "")
        archive.writestr("torch/__init__.py", "")
        archive.writestr("numpy-2.3.0.dist-info/METADATA", "")
        archive.writestr("scikit_learn.libs/libgomp.so", "")
    assert inspect_zip(planted).forbidden == ["numpy-2.3.0.dist-info", "scikit_learn.libs", "torch"]


# ---- data stores --------------------------------------------------------------------------------


def _data_stores(stage: str) -> dict[str, dict]:
    """data-stores.yaml's resources with Stage (and the bucket name) resolved."""
    template = load_template(DATA_STORES)
    return resolve(template["Resources"], {"Stage": stage, "ArtifactBucketName": f"bucket-{stage}",
                                           "DataBucketName": "", "AWS::Region": "us-east-1",
                                           "AWS::AccountId": "123456789012"})


def test_tables_are_on_demand_encrypted_and_recoverable():
    found = [r for r in _data_stores("dev").values() if r["Type"] == "AWS::DynamoDB::Table"]
    assert len(found) == 7
    for table in found:
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", props["TableName"]
        assert props["SSESpecification"] == {"SSEEnabled": True}, props["TableName"]
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, props["TableName"]


def test_the_buckets_are_versioned_encrypted_and_private():
    buckets = {k: r for k, r in _data_stores("dev").items() if r["Type"] == "AWS::S3::Bucket"}
    assert set(buckets) == {"ArtifactBucket", "DataBucket"}
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        assert set(props["PublicAccessBlockConfiguration"].values()) == {True} and len(
            props["PublicAccessBlockConfiguration"]) == 4
        assert bucket["DeletionPolicy"] == "Retain"


# ---- identity -----------------------------------------------------------------------------------


def test_the_user_pool_is_admin_managed_with_a_public_pkce_client():
    resources = load_template(CLOUDFORMATION / "identity.yaml")["Resources"]
    pool = resources["UserPool"]["Properties"]
    assert pool["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}
    assert pool["UsernameAttributes"] == ["email"] and pool["MfaConfiguration"] == "OPTIONAL"
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] >= 12
    client = resources["AppClient"]["Properties"]
    assert client["GenerateSecret"] is False and client["AllowedOAuthFlows"] == ["code"]
    with_password, without = client["ExplicitAuthFlows"]["Fn::If"][1:]
    assert set(without) == {"ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"}
    assert set(with_password) == set(without) | {"ALLOW_USER_PASSWORD_AUTH"}
    assert resources["AdminGroup"]["Properties"]["GroupName"] == {"Ref": "AdminGroupName"}


def test_the_identity_outputs_are_the_stage_auth_settings():
    outputs = load_template(CLOUDFORMATION / "identity.yaml")["Outputs"]
    names = {"AWS::Region": "eu-west-1", "AWS::URLSuffix": "amazonaws.com", "UserPool": "eu-west-1_Pool1"}
    issuer = resolve(outputs["Issuer"]["Value"], names)
    assert issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Pool1"
    assert resolve(outputs["JwksUrl"]["Value"], names) == issuer + "/.well-known/jwks.json"
    # Users send the ID token, whose aud is the app client id.
    assert outputs["Audience"]["Value"] == {"Ref": "AppClient"}


_ATTRIBUTE_TYPES = {"UnicodeAttribute": "S", "NumberAttribute": "N", "VersionAttribute": "N"}
_PROJECTIONS = {"AllProjection": "ALL", "KeysOnlyProjection": "KEYS_ONLY"}


def _model_schema(model) -> dict:
    """A PynamoDB model's keys, indexes and TTL attribute, in CloudFormation's terms."""
    attributes = model.get_attributes()

    def keys(attrs) -> list[tuple[str, str, str]]:
        found = [(a.attr_name, "HASH" if a.is_hash_key else "RANGE", _ATTRIBUTE_TYPES[type(a).__name__])
                 for a in attrs.values() if a.is_hash_key or a.is_range_key]
        return sorted(found, key=lambda k: k[1])

    indexes = {}
    for index in model._indexes.values():
        index_attributes = {name: a for name, a in vars(type(index)).items() if isinstance(a, Attribute)}
        indexes[index.Meta.index_name] = (keys(index_attributes), _PROJECTIONS[type(index.Meta.projection).__name__])
    ttl = [name for name, a in attributes.items() if type(a).__name__ == "TTLAttribute"]
    return {"keys": keys(attributes), "indexes": indexes, "ttl": ttl}


def _template_schema(props: dict) -> dict:
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}

    def keys(schema) -> list[tuple[str, str, str]]:
        return sorted(((k["AttributeName"], k["KeyType"], types[k["AttributeName"]]) for k in schema),
                      key=lambda k: k[1])

    indexes = {i["IndexName"]: (keys(i["KeySchema"]), i["Projection"]["ProjectionType"])
               for i in props.get("GlobalSecondaryIndexes", [])}
    return {"keys": keys(props["KeySchema"]), "indexes": indexes,
            "ttl": props.get("TimeToLiveSpecification", {}).get("AttributeName")}


def test_each_table_has_the_keys_indexes_and_ttl_its_pynamodb_model_uses():
    """The template is the only definition of the tables: it must be the schema the code reads."""
    local = chalice_stages()["local"]["environment_variables"]
    names = Settings.from_environ(local).table_names()
    by_name = {r["Properties"]["TableName"]: r["Properties"]
               for r in _data_stores("local").values() if r["Type"] == "AWS::DynamoDB::Table"}
    assert set(tables.ALL_TABLES) <= set(names)
    for key, model in tables.ALL_TABLES.items():
        props = by_name[names[key]]
        expected, declared = _model_schema(model), _template_schema(props)
        assert declared["keys"] == expected["keys"], key
        assert declared["indexes"] == expected["indexes"], key
        if declared["ttl"]:
            # DynamoDB's TTL reads epoch seconds from a Number attribute the model writes.
            attribute = model.get_attributes()[declared["ttl"]]
            assert type(attribute).__name__ in ("NumberAttribute", "TTLAttribute"), key
        assert not expected["ttl"] or declared["ttl"] == expected["ttl"][0], key
