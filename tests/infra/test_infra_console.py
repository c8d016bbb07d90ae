"""The web console in AWS: infra/cloudformation/console.yaml (a private bucket that only its CloudFront
distribution reads, over TLS, HTTPS-only, with the local stack's CSP, HSTS, nosniff and DENY framing),
identity.yaml's callback for it, and scripts/deploy_console.py publishing console/ and config.json
(against moto's S3)."""
from __future__ import annotations

import json

import boto3
import pytest
from infra_support import CLOUDFORMATION, STACK_VALUES, load_template, resolve
from moto import mock_aws

from scripts import deploy_console, local_console
from scripts.package import lint

CONSOLE = CLOUDFORMATION / "console.yaml"
WS_URL = "wss://ws12345.execute-api.us-east-1.amazonaws.com/api"
HOSTED_UI = "https://ml-models-dev-123456789012.auth.us-east-1.amazoncognito.com"
CONSOLE_URL = "https://d111111abcdef8.cloudfront.net/"
NAMES = {**STACK_VALUES, "Stage": "dev", "ApiDomainName": "restapi123.execute-api.us-east-1.amazonaws.com",
         "ApiStagePath": "/api", "WebSocketUrl": WS_URL, "HostedUiUrl": HOSTED_UI,
         "ConsoleBucket": "ml-models-console-dev-bucket",
         "ConsoleBucket.Arn": "arn:aws:s3:::ml-models-console-dev-bucket",
         "Distribution": "E2EXAMPLE", "Distribution.DomainName": "d111111abcdef8.cloudfront.net",
         "SecurityHeaders": "rhp-1"}


def _attributes(value):
    """`value` with each Fn::GetAtt replaced by NAMES["<resource>.<attribute>"] (infra_support resolves Ref and Sub)."""
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        return NAMES[".".join(value["Fn::GetAtt"])]
    if isinstance(value, dict):
        return {k: _attributes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_attributes(v) for v in value]
    return value


@pytest.fixture(scope="module")
def resources() -> dict[str, dict]:
    return load_template(CONSOLE)["Resources"]


def test_the_console_template_is_cfn_lint_clean():
    assert lint(CONSOLE) == []


def test_the_bucket_is_private_encrypted_and_owner_enforced(resources):
    props = resources["ConsoleBucket"]["Properties"]
    block = props["PublicAccessBlockConfiguration"]
    assert set(block) == {"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"}
    assert set(block.values()) == {True}
    rule, = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert "WebsiteConfiguration" not in props and "AccessControl" not in props  # no public website endpoint


def test_the_bucket_policy_denies_plain_http_and_lets_only_this_distribution_read(resources):
    policy = resolve(_attributes(resources["ConsoleBucketPolicy"]["Properties"]["PolicyDocument"]), NAMES)
    bucket, objects = NAMES["ConsoleBucket.Arn"], NAMES["ConsoleBucket.Arn"] + "/*"
    denies = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert any(s["Principal"] == "*" and s["Action"] == "s3:*" and set(s["Resource"]) == {bucket, objects}
               and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies), denies
    allows = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert allows == [{
        "Sid": "ThisDistributionReadsFiles", "Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:GetObject", "Resource": objects,
        "Condition": {"StringEquals": {"AWS:SourceArn": "arn:aws:cloudfront::123456789012:distribution/E2EXAMPLE"}}}]


def test_cloudfront_reads_the_bucket_through_origin_access_control_over_https_only(resources):
    oac = resources["OriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"], oac["SigningProtocol"]) == (
        "s3", "always", "sigv4")
    config = resources["Distribution"]["Properties"]["DistributionConfig"]
    assert config["DefaultRootObject"] == "index.html" and config["Enabled"] is True
    origins = {o["Id"]: o for o in config["Origins"]}
    files = origins[config["DefaultCacheBehavior"]["TargetOriginId"]]
    assert files["OriginAccessControlId"] == {"Fn::GetAtt": ["OriginAccessControl", "Id"]}
    assert files["S3OriginConfig"] == {"OriginAccessIdentity": ""}  # OAC, not the legacy identity
    assert files["DomainName"] == {"Fn::GetAtt": ["ConsoleBucket", "RegionalDomainName"]}
    behaviours = [config["DefaultCacheBehavior"], *config["CacheBehaviors"]]
    assert {b["ViewerProtocolPolicy"] for b in behaviours} == {"https-only"}
    assert {b["ResponseHeadersPolicyId"]["Ref"] for b in behaviours} == {"SecurityHeaders"}
    assert config["DefaultCacheBehavior"]["AllowedMethods"] == ["GET", "HEAD"]
    api, = config["CacheBehaviors"]
    assert api["PathPattern"] == "/api/*" and origins[api["TargetOriginId"]]["CustomOriginConfig"][
        "OriginProtocolPolicy"] == "https-only"
    # Nothing the API answers is cached; API Gateway gets its own Host (AllViewerExceptHostHeader).
    assert api["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
    assert api["OriginRequestPolicyId"] == "b689b0a8-53d0-40ab-baf2-68738e2966ac"


def test_the_security_headers_are_the_local_stacks_csp_with_hsts_nosniff_and_deny(resources):
    headers = resolve(resources["SecurityHeaders"]["Properties"], NAMES)["ResponseHeadersPolicyConfig"][
        "SecurityHeadersConfig"]
    csp = headers["ContentSecurityPolicy"]
    assert csp["Override"] is True
    # The same policy scripts/local_console.py sends, with the deployed WebSocket and hosted UI to connect to.
    auth = deploy_console.hosted_ui_auth(HOSTED_UI, "client", CONSOLE_URL)
    assert csp["ContentSecurityPolicy"] == local_console.content_security_policy(
        local_console.connect_sources(WS_URL, auth))
    hsts = headers["StrictTransportSecurity"]
    assert hsts["Override"] is True and hsts["AccessControlMaxAgeSec"] >= 31536000 and hsts["IncludeSubdomains"]
    assert headers["ContentTypeOptions"] == {"Override": True}
    assert headers["FrameOptions"] == {"Override": True, "FrameOption": "DENY"}
    assert headers["ReferrerPolicy"]["ReferrerPolicy"] == "no-referrer"


def test_the_outputs_name_the_distribution_and_the_bucket():
    outputs = load_template(CONSOLE)["Outputs"]
    assert resolve(outputs["ConsoleUrl"]["Value"], NAMES) == CONSOLE_URL
    assert outputs["DistributionDomainName"]["Value"] == {"Fn::GetAtt": ["Distribution", "DomainName"]}
    assert outputs["BucketName"]["Value"] == {"Ref": "ConsoleBucket"}


def _pick(value, conditions: dict[str, bool]):
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        name, then, otherwise = value["Fn::If"]
        return then if conditions[name] else otherwise
    return value


def test_the_api_app_client_takes_the_console_url_as_a_callback_when_given():
    template = load_template(CLOUDFORMATION / "identity.yaml")
    client = template["Resources"]["AppClient"]["Properties"]
    assert template["Conditions"]["HasConsole"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ConsoleUrl"}, ""]}]}
    assert template["Parameters"]["ConsoleUrl"]["Default"] == ""
    names = {"CallbackUrl": "https://localhost:3000/callback", "LogoutUrl": "https://localhost:3000/",
             "ConsoleUrl": CONSOLE_URL}
    with_console = resolve(_pick(client["CallbackURLs"], {"HasConsole": True}), names)
    assert CONSOLE_URL in with_console
    assert CONSOLE_URL in resolve(_pick(client["LogoutURLs"], {"HasConsole": True}), names)
    assert CONSOLE_URL not in resolve(_pick(client["CallbackURLs"], {"HasConsole": False}), names)
    # The console's ID token must be the API's audience: it is this client, public, code flow only.
    assert client["GenerateSecret"] is False and client["AllowedOAuthFlows"] == ["code"]
    assert "openid" in client["AllowedOAuthScopes"]


# ---- scripts/deploy_console.py -------------------------------------------------------------------------


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="console-bucket")
        yield client


def _objects(s3) -> dict[str, dict]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="console-bucket").get("Contents", [])]
    return {key: s3.get_object(Bucket="console-bucket", Key=key) for key in keys}


def test_deploy_uploads_the_served_files_and_a_config_for_the_stage_and_drops_stale_ones(s3):
    s3.put_object(Bucket="console-bucket", Key="views/old-page.js", Body=b"stale")
    code = deploy_console.main(["--bucket", "console-bucket", "--websocket-url", WS_URL, "--hosted-ui-url",
                                HOSTED_UI + "/", "--client-id", "4ab5cd6ef7", "--redirect-uri", CONSOLE_URL], s3=s3)
    assert code == 0
    objects = _objects(s3)
    served = local_console.servable_files()
    assert set(objects) == set(served) | {"config.json"}
    assert "views/old-page.js" not in objects
    assert not any(k.startswith(".") or "/." in k or k.endswith(("LICENSE", ".sh")) for k in objects)
    index = objects["index.html"]
    assert index["ContentType"] == "text/html; charset=utf-8" and index["CacheControl"] == "no-cache"
    assert index["Body"].read() == (local_console.CONSOLE_DIR / "index.html").read_bytes()
    assert objects["app.js"]["ContentType"] == "text/javascript; charset=utf-8"
    config = json.loads(objects["config.json"]["Body"].read())
    assert config == {"websocket_url": WS_URL, "auth": {
        "authorize_url": HOSTED_UI + "/oauth2/authorize", "token_url": HOSTED_UI + "/oauth2/token",
        "client_id": "4ab5cd6ef7", "redirect_uri": CONSOLE_URL, "scopes": ["openid", "email", "profile"]}}
    # No api_base_url: the distribution forwards /api/* to the API, so the console calls its own origin.
    assert objects["config.json"]["ContentType"] == "application/json"


def test_deploy_without_a_hosted_ui_is_paste_a_token_only_and_an_api_elsewhere_is_named(s3):
    deploy_console.main(["--bucket", "console-bucket", "--websocket-url", WS_URL,
                         "--api-base-url", "https://api.example.com/api/"], s3=s3)
    config = json.loads(_objects(s3)["config.json"]["Body"].read())
    assert config == {"websocket_url": WS_URL, "api_base_url": "https://api.example.com/api"}


@pytest.mark.parametrize("extra", [
    ["--hosted-ui-url", HOSTED_UI],  # without a client id and redirect URI
    ["--hosted-ui-url", "http://idp.example.com", "--client-id", "c", "--redirect-uri", CONSOLE_URL],
    ["--hosted-ui-url", HOSTED_UI, "--client-id", "c", "--redirect-uri", "http://d1.cloudfront.net/"],
])
def test_deploy_refuses_an_incomplete_or_plain_http_sign_in_and_uploads_nothing(s3, extra):
    with pytest.raises(SystemExit):
        deploy_console.main(["--bucket", "console-bucket", "--websocket-url", WS_URL, *extra], s3=s3)
    assert _objects(s3) == {}
