#!/usr/bin/env bash
# Submit one o1e stage to a running Ray cluster as a Ray job.
#   clusters/submit.sh eval -c eval/configs/cluster_s3.yaml
#   RAY_ADDRESS=http://head:8265 clusters/submit.sh eval -d s3://bucket/beir/scifact -m s3://bucket/models/minilm -n 8
# The job runs `python -m <stage> ...` with this checkout as its working dir; ray.init() inside the
# stage joins the cluster through RAY_ADDRESS, which Ray sets for the job.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=$1; shift
exec ray job submit --address "${RAY_ADDRESS:-http://127.0.0.1:8265}" --working-dir . \
  --runtime-env clusters/runtime_env.yaml -- python -m "$stage" "$@"
