"""Create Clearway's AWS resources in the local emulator (moto_server). Idempotent.

Run by infra/local/up.sh with the virtualenv's python. Reads AWS_ENDPOINT_URL, AWS_REGION,
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the names from CLEARWAY_QUEUE_PREFIX,
CLEARWAY_STREAM, CLEARWAY_BUCKET. Creates, per workflow step, a FIFO queue
`<prefix>-<step>.fifo` with a dead-letter queue `<prefix>-<step>-dlq.fifo`
(RedrivePolicy maxReceiveCount=16), a Kinesis stream (1 shard) and an S3 bucket with
versioning. Existing resources are kept and their attributes set again.
Prints progress to stderr only; `--check` verifies without creating.
"""

import json
import os
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

STEPS = ("persist", "settle", "publish", "archive")
MAX_RECEIVE_COUNT = 16  # as workers::provision::MAX_RECEIVE_COUNT (twice the 8 attempts)
VISIBILITY_TIMEOUT = 30
DLQ_RETENTION = 14 * 24 * 3600  # AWS maximum: time for an operator to replay

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:5055")
REGION = os.environ.get("AWS_REGION", "us-east-1")
PREFIX = os.environ.get("CLEARWAY_QUEUE_PREFIX", "clearway")
STREAM = os.environ.get("CLEARWAY_STREAM", "clearway-events")
BUCKET = os.environ.get("CLEARWAY_BUCKET", "clearway-archive")


def log(msg):
    print(f"[aws_resources] {msg}", file=sys.stderr, flush=True)


def client(service):
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def error_code(e):
    return e.response.get("Error", {}).get("Code", "")


def ensure_queue(sqs, name, attrs):
    """Create a FIFO queue, or set the attributes again on an existing one."""
    create_attrs = {"FifoQueue": "true", **attrs}
    try:
        url = sqs.create_queue(QueueName=name, Attributes=create_attrs)["QueueUrl"]
    except ClientError as e:
        if error_code(e) not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    # CreateQueue on an existing queue with equal attributes succeeds without
    # changing anything: set them anyway so the queue always matches this file.
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attrs)
    return url


def queues(sqs, check_only):
    for step in STEPS:
        name = f"{PREFIX}-{step}.fifo"
        dlq_name = f"{PREFIX}-{step}-dlq.fifo"
        base = {
            "ContentBasedDeduplication": "false",
            "VisibilityTimeout": str(VISIBILITY_TIMEOUT),
        }
        if not check_only:
            dlq_url = ensure_queue(sqs, dlq_name, {**base, "MessageRetentionPeriod": str(DLQ_RETENTION)})
        else:
            dlq_url = sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
        if not check_only:
            url = ensure_queue(sqs, name, {**base, "RedrivePolicy": redrive})
        else:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        policy = json.loads(got.get("RedrivePolicy", "{}"))
        problems = []
        if got.get("FifoQueue") != "true":
            problems.append("not FIFO")
        if got.get("ContentBasedDeduplication") != "false":
            problems.append("ContentBasedDeduplication != false")
        if got.get("VisibilityTimeout") != str(VISIBILITY_TIMEOUT):
            problems.append(f"VisibilityTimeout={got.get('VisibilityTimeout')}")
        if policy.get("deadLetterTargetArn") != dlq_arn or int(policy.get("maxReceiveCount", 0)) != MAX_RECEIVE_COUNT:
            problems.append(f"RedrivePolicy={got.get('RedrivePolicy')}")
        if problems:
            raise SystemExit(f"queue {name}: {', '.join(problems)}")
        log(f"queue {name} -> {dlq_name} (maxReceiveCount={MAX_RECEIVE_COUNT}) ok")


def stream(kinesis, check_only):
    if not check_only:
        try:
            kinesis.create_stream(StreamName=STREAM, ShardCount=1)
            log(f"stream {STREAM} created")
        except ClientError as e:
            if error_code(e) != "ResourceInUseException":
                raise
    deadline = time.monotonic() + 30
    while True:
        desc = kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]
        if desc["StreamStatus"] == "ACTIVE":
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"stream {STREAM} is {desc['StreamStatus']}, not ACTIVE after 30 s")
        time.sleep(0.2)
    log(f"stream {STREAM} ACTIVE with {desc['OpenShardCount']} shard(s) ok")


def bucket(s3, check_only):
    if not check_only:
        try:
            s3.head_bucket(Bucket=BUCKET)
        except ClientError as e:
            if error_code(e) not in ("404", "NoSuchBucket", "NotFound"):
                raise
            try:
                s3.create_bucket(Bucket=BUCKET)  # us-east-1: no LocationConstraint
                log(f"bucket {BUCKET} created")
            except ClientError as e2:
                if error_code(e2) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    status = s3.get_bucket_versioning(Bucket=BUCKET).get("Status")
    if status != "Enabled":
        raise SystemExit(f"bucket {BUCKET}: versioning is {status!r}")
    log(f"bucket {BUCKET} versioning Enabled ok")


def main():
    check_only = "--check" in sys.argv[1:]
    queues(client("sqs"), check_only)
    stream(client("kinesis"), check_only)
    bucket(client("s3"), check_only)


if __name__ == "__main__":
    main()
