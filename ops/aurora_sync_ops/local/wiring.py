"""Connect the local data-lake bucket to the local Snowpipe, as the SAM template does on AWS.

In production the template puts an ``s3:ObjectCreated:*`` notification on the data-lake bucket
targeting the SQS queue that SHOW PIPES names in ``notification_channel`` (one queue per Snowflake
account; the SnowpipeQueueArn parameter). Locally the queue belongs to the Snowflake emulator and
lives in moto, so the same configuration is applied here through the S3 API.
"""

from __future__ import annotations

from typing import Any

from ..environment import local_aws_client

NOTIFICATION_ID = "aurora-sync-snowpipe"


class WiringError(RuntimeError):
    """The bucket cannot be wired yet; the message says what to do first."""


def _admin_s3(aws: dict[str, Any]) -> Any:
    return local_aws_client("s3", aws)


def snowpipe_queue_arn(connect_kwargs: dict[str, Any]) -> str:
    """The account's Snowpipe queue, from any auto-ingest pipe's SHOW PIPES row."""
    import snowflake.connector

    with (
        snowflake.connector.connect(**connect_kwargs) as conn,
        conn.cursor(snowflake.connector.DictCursor) as cur,
    ):
        cur.execute("SHOW PIPES IN ACCOUNT")
        channels = {
            str(row["notification_channel"]) for row in cur.fetchall() if row.get("notification_channel")
        }
    if not channels:
        raise WiringError(
            "no auto-ingest pipe exists in the local Snowflake, so its notification queue is unknown: "
            "create a table's Snowflake objects first (aurora-sync sql snowflake --tables NAME --apply)"
        )
    if len(channels) > 1:
        raise WiringError(f"pipes name more than one notification channel: {sorted(channels)}")
    return channels.pop()


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
