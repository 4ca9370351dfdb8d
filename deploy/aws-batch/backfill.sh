#!/usr/bin/env bash
# AWS Batch: the shards as an array job (Batch sets AWS_BATCH_JOB_ARRAY_INDEX; the count is
# given in CC_ANALYTICS_SHARD_COUNT, Batch has no size variable), then the reduce as a job that
# depends on the whole array. The job definition is job-definition.json.
set -euo pipefail
QUEUE=${QUEUE:-cc-analytics}
SHARDS=${SHARDS:-24}
aws batch register-job-definition --cli-input-json file://"$(dirname "$0")"/job-definition.json >/dev/null
array=$(aws batch submit-job --job-name cc-analytics-backfill --job-queue "$QUEUE" \
  --job-definition cc-analytics --array-properties size="$SHARDS" \
  --container-overrides "{\"command\":[\"run\",\"--config\",\"/config/backfill.toml\",\"--from\",\"2026-01-01\",\"--to\",\"2026-12-31\",\"-q\"],\"environment\":[{\"name\":\"CC_ANALYTICS_SHARD_COUNT\",\"value\":\"$SHARDS\"}]}" \
  --query jobId --output text)
aws batch submit-job --job-name cc-analytics-reduce --job-queue "$QUEUE" \
  --job-definition cc-analytics --depends-on jobId="$array" \
  --container-overrides '{"command":["reports","--config","/config/backfill.toml","-q"]}'
