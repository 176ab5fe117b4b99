"""Missing AWS credentials, said in one line that names the fix.

botocore's `NoCredentialsError` ("Unable to locate credentials") does not say that DynamoDB Local
accepts any credentials but still needs some, nor where real AWS ones come from. Every command
that talks to DynamoDB turns it into the line below instead of a traceback or a retry loop.
"""

from __future__ import annotations

from urllib.parse import urlsplit

# What DynamoDB Local needs: any key (the local stack runs it with -sharedDb, so every key sees
# the same tables) and a region. `parity dev env` exports the same values.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                     "AWS_DEFAULT_REGION": "us-east-1"}
_LOCAL_EXPORT = "export " + " ".join(f"{k}={v}" for k, v in LOCAL_CREDENTIALS.items())
_AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


def is_local_endpoint(endpoint: str | None) -> bool:
    """An explicit endpoint that is not AWS's own: DynamoDB Local or another emulator."""
    if not endpoint:
        return False
    host = (urlsplit(endpoint if "//" in endpoint else f"//{endpoint}").hostname or "").lower()
    return not host.endswith(_AWS_HOSTS)


def missing_credentials_message(endpoint: str | None, region: str | None = None) -> str:
    if is_local_endpoint(endpoint):
        return (f"no AWS credentials found; DynamoDB Local ({endpoint}) accepts any but needs some: "
                f'{_LOCAL_EXPORT}, or for the local stack run eval "$(parity dev env)"')
    where = f" in {region}" if region else ""
    return (f"no AWS credentials found for DynamoDB{where}: configure them (AWS_PROFILE or `aws configure`, "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an instance or task role, or IRSA on EKS: "
            "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE)")


def generic_missing_credentials_message() -> str:
    """When the endpoint is not known where the error surfaced."""
    return ("AWS credentials missing: against DynamoDB Local export any "
            f'({_LOCAL_EXPORT}, or eval "$(parity dev env)" for the local stack); against AWS configure '
            "them (AWS_PROFILE, an instance or task role, or IRSA on EKS)")


def find_no_credentials(exc: BaseException) -> BaseException | None:
    """botocore's NoCredentialsError, if it is `exc` or anywhere in its cause/context chain."""
    from botocore.exceptions import NoCredentialsError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, NoCredentialsError):
            found: BaseException = current
            return found
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def credentials_resolvable() -> bool:
    """Whether boto3's default chain finds credentials now (env, profile, web identity, role)."""
    import boto3

    return boto3.session.Session().get_credentials() is not None
