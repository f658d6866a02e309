"""Credentials a provider obtains per request: OAuth2 client-credentials tokens and AWS
SigV4 signatures (I/O).

Both are computed from a spec whose secret fields (`clientSecret`, `basicAuth.password`)
were `{{args.x}}` placeholders already substituted from Secrets by the runner, which masks
those values in everything written. A token is fetched for each measurement (no cache to
outlive a rotated secret); the token endpoint is reached under the same egress policy as the
metrics server.

SigV4 uses botocore (the `aws` extra: `pip install 'rollouts[aws]'`) and the standard AWS
credential chain (environment, shared profile, IRSA web identity, instance role), assuming
`roleArn` through STS when given.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Generator
from typing import Any

import httpx

from rollouts.analysis.providers.base import ErrorReason, HttpClients, ProviderError, shorten
from rollouts.models.providers import OAuth2Config, SigV4Config

__all__ = ["SigV4Auth", "oauth2_token", "sigv4_auth"]

SIGV4_SERVICE = "aps"  # Amazon Managed Service for Prometheus


async def oauth2_token(
    clients: HttpClients, config: OAuth2Config, *, insecure: bool, timeout: float
) -> str | ProviderError:
    """An access token from `config.tokenUrl` (client_credentials grant, RFC 6749 §4.4)."""
    form = {"grant_type": "client_credentials"}
    if config.scopes:
        form["scope"] = " ".join(config.scopes)
    response = await clients.fetch(
        "POST",
        config.token_url,
        insecure=insecure,
        data=form,
        auth=httpx.BasicAuth(config.client_id, config.client_secret),
        headers={"Accept": "application/json"},
        timeout=timeout,
    )
    if isinstance(response, ProviderError):
        return ProviderError(response.reason, f"oauth2 token: {response.message}")
    if not 200 <= response.status_code < 300:
        return ProviderError(
            ErrorReason.CREDENTIALS,
            f"oauth2 token endpoint {config.token_url} answered {response.status_code}: "
            f"{shorten(response.text.strip(), 200)}",
            status_code=response.status_code,
        )
    try:
        body: Any = json.loads(response.content)
        token = body["access_token"]
    except (ValueError, KeyError, TypeError):
        return ProviderError(
            ErrorReason.CREDENTIALS,
            f"oauth2 token endpoint {config.token_url} sent no access_token",
        )
    if not isinstance(token, str) or not token:
        return ProviderError(ErrorReason.CREDENTIALS, "oauth2 access_token is empty")
    return token


class SigV4Auth(httpx.Auth):
    """Signs each request (body included) with AWS SigV4 for `service` in `region`."""

    requires_request_body = True

    def __init__(self, credentials: Any, region: str, service: str = SIGV4_SERVICE) -> None:
        self._credentials = credentials
        self._region = region
        self._service = service

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        from botocore.auth import SigV4Auth as BotoSigner
        from botocore.awsrequest import AWSRequest

        headers = {k: v for k, v in request.headers.items() if k.lower() != "connection"}
        aws = AWSRequest(
            method=request.method, url=str(request.url), data=request.content, headers=headers
        )
        BotoSigner(self._credentials, self._service, self._region).add_auth(aws)
        for key, value in aws.headers.items():
            request.headers[key] = value
        yield request


def _credentials(config: SigV4Config) -> tuple[Any, str]:
    import boto3

    session = boto3.Session(profile_name=config.profile, region_name=config.region)
    region = config.region or session.region_name
    if not region:
        raise ValueError("sigv4 needs a region (spec or AWS_REGION)")
    if config.role_arn:
        sts = session.client("sts", region_name=region)
        assumed = sts.assume_role(RoleArn=config.role_arn, RoleSessionName="rollouts-analysis")
        found = assumed["Credentials"]
        session = boto3.Session(
            aws_access_key_id=found["AccessKeyId"],
            aws_secret_access_key=found["SecretAccessKey"],
            aws_session_token=found["SessionToken"],
            region_name=region,
        )
    credentials = session.get_credentials()
    if credentials is None:
        raise ValueError("no AWS credentials found (environment, profile, IRSA or instance role)")
    return credentials.get_frozen_credentials(), region


async def sigv4_auth(config: SigV4Config) -> SigV4Auth | ProviderError:
    """The signer for `config`; credentials looked up off the event loop (they may call STS
    or the instance-metadata service)."""
    try:
        credentials, region = await asyncio.to_thread(_credentials, config)
    except ModuleNotFoundError:
        return ProviderError(
            ErrorReason.INVALID_SPEC,
            "sigv4 needs boto3: install the controller with the aws extra (rollouts[aws])",
        )
    except Exception as exc:  # botocore raises many kinds; each is a credentials problem
        return ProviderError(ErrorReason.CREDENTIALS, f"sigv4: {type(exc).__name__}: {exc}")
    return SigV4Auth(credentials, region)


async def spec_auth(
    clients: HttpClients,
    authentication: object,
    headers: dict[str, str],
    *,
    insecure: bool,
    timeout: float,
) -> httpx.Auth | ProviderError | None:
    """Apply Argo's `basicAuth` / `oauth2` / `sigv4` of an `authentication` block (any of
    them may be absent on a given provider's model): an OAuth2 token goes into `headers`,
    basic and SigV4 come back as the httpx auth to send with."""
    basic = getattr(authentication, "basic_auth", None)
    if basic is not None:
        return httpx.BasicAuth(basic.username, basic.password)
    oauth2 = getattr(authentication, "oauth2", None)
    if oauth2 is not None:
        token = await oauth2_token(clients, oauth2, insecure=insecure, timeout=timeout)
        if isinstance(token, ProviderError):
            return token
        headers["Authorization"] = f"Bearer {token}"
        return None
    sigv4 = getattr(authentication, "sigv4", None)
    if sigv4 is not None:
        return await sigv4_auth(sigv4)
    return None
