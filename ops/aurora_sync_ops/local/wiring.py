"""Connect the local data-lake bucket to the local Snowpipe, as the SAM template does on AWS.

In production the template puts an ``s3:ObjectCreated:*`` notification on the data-lake bucket
targeting the SQS queue that SHOW PIPES names in ``notification_channel`` (one queue per Snowflake
account, existing before any pipe; the SnowpipeSqsArn parameter). Locally the queue belongs to
the Snowflake emulator and lives in moto, so the same configuration is applied here through the
S3 API; ``local up`` does it once, before any table exists.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from ..environment import local_aws_client

NOTIFICATION_ID = "aurora-sync-snowpipe"


class WiringError(RuntimeError):
    """The bucket cannot be wired yet; the message says what to do first."""


def _admin_s3(aws: dict[str, Any]) -> Any:
    return local_aws_client("s3", aws)


def snowpipe_queue_arn(connect_kwargs: dict[str, Any]) -> str:
    """The account's Snowpipe queue, which exists before any pipe does.

    Snowflake creates one queue per account; SQL shows it only on a pipe (SHOW PIPES
    ``notification_channel``), so the emulator reports it on its own route, which lets
    ``local up`` wire the bucket before the user's first table exists.
    """
    url = f"{connect_kwargs['protocol']}://{connect_kwargs['host']}:{connect_kwargs['port']}/emulator/account"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the local emulator
            channel = json.load(response).get("notification_channel")
    except (OSError, ValueError) as exc:
        raise WiringError(
            f"the local Snowflake at {url} did not name its Snowpipe queue ({exc}); "
            "restart it: aurora-sync local down && aurora-sync local up"
        ) from None
    if not channel:
        raise WiringError(f"the local Snowflake at {url} has no Snowpipe queue; see its log")
    return str(channel)


def connect_bucket_to_snowpipe(stack_status: dict[str, Any]) -> str:
    """Route the bucket's ObjectCreated events to Snowpipe's queue; returns the queue ARN.

    Idempotent: the configuration with our id is replaced, every other one the bucket has is kept.
    """
    aws = stack_status["aws"]
    queue_arn = snowpipe_queue_arn(stack_status["snowflake"])
    s3 = _admin_s3(aws)
    current = s3.get_bucket_notification_configuration(Bucket=aws["bucket"])
    current.pop("ResponseMetadata", None)
    queues = [q for q in current.get("QueueConfigurations", []) if q.get("Id") != NOTIFICATION_ID]
    queues.append({"Id": NOTIFICATION_ID, "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]})
    s3.put_bucket_notification_configuration(
        Bucket=aws["bucket"], NotificationConfiguration={**current, "QueueConfigurations": queues}
    )
    return queue_arn


def disconnect_bucket_from_snowpipe(stack_status: dict[str, Any]) -> None:
    """Remove only our notification (tests use it to lose events on purpose)."""
    aws = stack_status["aws"]
    s3 = _admin_s3(aws)
    current = s3.get_bucket_notification_configuration(Bucket=aws["bucket"])
    current.pop("ResponseMetadata", None)
    current["QueueConfigurations"] = [
        q for q in current.get("QueueConfigurations", []) if q.get("Id") != NOTIFICATION_ID
    ]
    s3.put_bucket_notification_configuration(Bucket=aws["bucket"], NotificationConfiguration=current)
