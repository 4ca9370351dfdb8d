#!/usr/bin/env bash
# Cloud Run Jobs: the shards as the tasks of one job (Cloud Run sets CLOUD_RUN_TASK_INDEX and
# CLOUD_RUN_TASK_COUNT, which cc-analytics reads in shard mode), then the reduce as a second job.
# The output is a gs:// bucket; credentials come from the job's service account.
set -euo pipefail
IMAGE=${IMAGE:-europe-docker.pkg.dev/example/cc/cc-analytics:0.1.0}
REGION=${REGION:-europe-west1}
SHARDS=${SHARDS:-24}
gcloud run jobs create cc-analytics-backfill --region "$REGION" --image "$IMAGE" \
  --tasks "$SHARDS" --parallelism "$SHARDS" --max-retries 3 --task-timeout 6h \
  --cpu 2 --memory 2Gi \
  --set-env-vars CC_ANALYTICS_SHARD_COUNT="$SHARDS" \
  --args run,--config,/config/backfill.toml,--from,2026-01-01,--to,2026-12-31,-q
gcloud run jobs execute cc-analytics-backfill --region "$REGION" --wait
gcloud run jobs create cc-analytics-reduce --region "$REGION" --image "$IMAGE" \
  --tasks 1 --max-retries 2 --cpu 2 --memory 2Gi \
  --args reports,--config,/config/backfill.toml,-q
gcloud run jobs execute cc-analytics-reduce --region "$REGION" --wait
