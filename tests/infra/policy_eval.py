"""The AWS calls the app makes, as IAM sees them, and a small evaluator of identity policies.

- `AwsCallRecorder` records every botocore operation made in this process (boto3 clients and
  PynamoDB's own botocore session alike), tagged with the Lambda function it ran for.
- `iam_requests` turns one recorded operation into the IAM action(s), resource ARN(s) and
  condition keys AWS authorizes it with.
- `allowing_statements` evaluates an identity policy for one request: Allow statements,
  `*`/`?` wildcards in actions and ARNs, and the condition operators these policies use;
  `allowed_by_all` intersects several (a session policy and its role's policy).
  Anything it does not understand (NotAction, Deny, an unknown operator) fails loudly rather
  than guessing.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class AwsCall:
    function: str  # the Lambda function (template logical id) the call ran for
    service: str  # botocore service name: dynamodb, s3, eks, apigatewaymanagementapi, ...
    operation: str  # botocore operation name: GetItem, ListObjectsV2, ...
    params: dict = field(hash=False, compare=False)


class AwsCallRecorder:
    """A `before-parameter-build` handler (it sees the operation's API parameters) for every botocore
    session; `function` says whose calls these are.

    Calls made while `function` is None (test set-up) are not recorded.
    """

    def __init__(self) -> None:
        self.calls: list[AwsCall] = []
        self.function: str | None = None

    def __call__(self, model: Any, params: dict, **kwargs: Any) -> None:
        if self.function is not None:
            service = model.service_model.service_name
            self.calls.append(AwsCall(self.function, service, model.name, dict(params)))

    @contextmanager
    def acting_as(self, function: str) -> Iterator[None]:
        previous, self.function = self.function, function
        try:
            yield
        finally:
            self.function = previous


@dataclass(frozen=True)
class IamRequest:
    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        extra = "".join(f" [{k}={v!r}]" for k, v in self.context)
        return f"{self.action} on {self.resource}{extra}"


class UnmappedCall(Exception):
    """An operation this module does not know how to authorize: add it to `iam_requests`."""


@dataclass(frozen=True)
class Account:
    partition: str = "aws"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    # Where the app posts to WebSocket connections in AWS (its WEBSOCKET_ENDPOINT_URL there):
    # https://<api id>.execute-api.<region>.amazonaws.com/<stage>
    websocket_endpoint: str = ""


_DYNAMODB_ITEM_OPS = {"GetItem", "PutItem", "DeleteItem", "UpdateItem", "DescribeTable", "Query", "Scan"}
_DYNAMODB_TRANSACT = {"ConditionCheck": "ConditionCheckItem", "Put": "PutItem", "Update": "UpdateItem",
                      "Delete": "DeleteItem", "Get": "GetItem"}
_S3_OBJECT_OPS = {"GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
                  "DeleteObject": "s3:DeleteObject"}
_MANAGE_CONNECTIONS = {"PostToConnection": "POST", "GetConnection": "GET", "DeleteConnection": "DELETE"}
# Operations IAM never denies: no permission is needed for them.
_ALWAYS_ALLOWED = {("sts", "GetCallerIdentity")}


def _dynamodb(call: AwsCall, acct: Account) -> list[IamRequest]:
    def table(name: str) -> str:
        return f"arn:{acct.partition}:dynamodb:{acct.region}:{acct.account_id}:table/{name}"

    p = call.params
    if call.operation in _DYNAMODB_ITEM_OPS:
        arn = table(p["TableName"]) + (f"/index/{p['IndexName']}" if p.get("IndexName") else "")
        return [IamRequest(f"dynamodb:{call.operation}", arn)]
    if call.operation in ("BatchWriteItem", "BatchGetItem"):
        return [IamRequest(f"dynamodb:{call.operation}", table(name)) for name in p["RequestItems"]]
    if call.operation in ("TransactWriteItems", "TransactGetItems"):
        requests = []
        for item in p["TransactItems"]:
            (kind, body), = item.items()
            requests.append(IamRequest(f"dynamodb:{_DYNAMODB_TRANSACT[kind]}", table(body["TableName"])))
        return requests
    raise UnmappedCall(f"dynamodb {call.operation}")


def _s3(call: AwsCall, acct: Account) -> list[IamRequest]:
    p = call.params
    bucket = f"arn:{acct.partition}:s3:::{p['Bucket']}"
    if call.operation in ("ListObjectsV2", "ListObjects"):
        return [IamRequest("s3:ListBucket", bucket, (("s3:prefix", p.get("Prefix", "")),))]
    if call.operation in _S3_OBJECT_OPS:
        return [IamRequest(_S3_OBJECT_OPS[call.operation], f"{bucket}/{p['Key']}")]
    if call.operation == "DeleteObjects":  # IAM authorizes s3:DeleteObject for each key of the batch
        return [IamRequest("s3:DeleteObject", f"{bucket}/{o['Key']}") for o in p["Delete"]["Objects"]]
    raise UnmappedCall(f"s3 {call.operation}")


def _manage_connections(call: AwsCall, acct: Account) -> list[IamRequest]:
    if call.operation not in _MANAGE_CONNECTIONS or not acct.websocket_endpoint:
        raise UnmappedCall(f"apigatewaymanagementapi {call.operation}")
    url = urlsplit(acct.websocket_endpoint)
    api_id, stage = url.hostname.split(".", 1)[0], url.path.strip("/").split("/", 1)[0]
    verb = _MANAGE_CONNECTIONS[call.operation]
    arn = (f"arn:{acct.partition}:execute-api:{acct.region}:{acct.account_id}:"
           f"{api_id}/{stage}/{verb}/@connections/{call.params['ConnectionId']}")
    return [IamRequest("execute-api:ManageConnections", arn)]


def _lambda_invoke(call: AwsCall, acct: Account) -> list[IamRequest]:
    """lambda:InvokeFunction on the function's ARN, qualified when the call names a version or alias.
    FunctionName may be a name, `name:qualifier`, a partial ARN (`<account>:function:<name>`) or an ARN
    (whose own partition, region and account then count)."""
    name = call.params["FunctionName"]
    partition, region, account = acct.partition, acct.region, acct.account_id
    if name.startswith("arn:"):
        _, partition, _, region, account, _ = name.split(":", 5)
    elif ":function:" in name:
        account = name.split(":", 1)[0]
    function, _, qualifier = name.rsplit(":function:", 1)[-1].partition(":")
    qualifier = call.params.get("Qualifier") or qualifier
    arn = f"arn:{partition}:lambda:{region}:{account}:function:{function}"
    return [IamRequest("lambda:InvokeFunction", f"{arn}:{qualifier}" if qualifier else arn)]


def iam_requests(call: AwsCall, acct: Account) -> list[IamRequest]:
    """What IAM is asked to allow when `call` is made in `acct`."""
    if (call.service, call.operation) in _ALWAYS_ALLOWED:
        return []
    if call.service == "dynamodb":
        return _dynamodb(call, acct)
    if call.service == "s3":
        return _s3(call, acct)
    if call.service == "eks" and call.operation == "DescribeCluster":
        arn = f"arn:{acct.partition}:eks:{acct.region}:{acct.account_id}:cluster/{call.params['name']}"
        return [IamRequest("eks:DescribeCluster", arn)]
    if call.service == "apigatewaymanagementapi":
        return _manage_connections(call, acct)
    if call.service == "lambda" and call.operation == "Invoke":
        return _lambda_invoke(call, acct)
    if call.service == "sts" and call.operation == "AssumeRole":
        return [IamRequest("sts:AssumeRole", call.params["RoleArn"])]
    raise UnmappedCall(f"{call.service} {call.operation}")


# ---- evaluating a policy ------------------------------------------------------------------------


class UnsupportedPolicy(Exception):
    """The policy uses something this evaluator does not implement."""


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM wildcard matching: `*` is any run of characters (including none), `?` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def _condition_holds(condition: dict, context: dict[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            if key not in context:
                return False  # no ...IfExists operators here: an absent key fails the test
            actual = context[key]
            if operator == "StringEquals":
                ok = actual in _as_list(expected)
            elif operator == "StringLike":
                ok = any(wildcard_match(p, actual) for p in _as_list(expected))
            else:
                raise UnsupportedPolicy(f"condition operator {operator}")
            if not ok:
                return False
    return True


def statements(policy: dict) -> list[dict]:
    found = _as_list(policy["Statement"])
    for statement in found:
        unsupported = {"NotAction", "NotResource", "NotPrincipal", "Principal"} & statement.keys()
        if unsupported or statement.get("Effect") != "Allow":
            raise UnsupportedPolicy(f"statement {statement.get('Sid')!r}: only Allow/Action/Resource/Condition")
    return found


def allowing_statements(policy: dict, request: IamRequest) -> list[str]:
    """Sids of the statements that allow `request` (an empty list means denied)."""
    context = dict(request.context)
    allowed = []
    for i, statement in enumerate(statements(policy)):
        if not any(wildcard_match(a, request.action, ignore_case=True) for a in _as_list(statement["Action"])):
            continue
        if not any(wildcard_match(r, request.resource) for r in _as_list(statement["Resource"])):
            continue
        if not _condition_holds(statement.get("Condition", {}), context):
            continue
        allowed.append(statement.get("Sid") or f"#{i}")
    return allowed


def allowed_by_all(policies: list[dict], request: IamRequest) -> bool:
    """Whether every policy allows `request`: how a session policy and the role's identity policy
    combine (the effective permissions of assumed-role credentials are their intersection)."""
    return all(allowing_statements(policy, request) for policy in policies)


def grants(policy: dict) -> list[tuple[str, str, str]]:
    """Every (Sid, action, resource) pair the policy grants."""
    return [(s.get("Sid", ""), action, resource) for s in statements(policy)
            for action in _as_list(s["Action"]) for resource in _as_list(s["Resource"])]
