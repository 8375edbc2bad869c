#!/usr/bin/env bash
# Submit the pipeline, or one o1e stage, to a running Ray cluster as a Ray job.
#   clusters/submit.sh pipeline -c pipeline/configs/paper.yaml
#   clusters/submit.sh eval -c eval/configs/cluster_s3.yaml
#   RAY_ADDRESS=http://head:8265 clusters/submit.sh synth run -c synth/configs/paper_vllm_cluster.yaml
# The job runs `python -m <module> ...` with this checkout as its working dir. The upload leaves out .git/,
# so the commit travels in O1E_GIT_COMMIT and every manifest the job writes names it. The submission id is
# o1e-<stage>-<UTC time>-<commit> unless SUBMISSION_ID is set; the job's driver asks for ENTRYPOINT_CPUS
# CPUs (default 1) and no GPU: the stages place their own GPU actors.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:-}
case $stage in
  pipeline|eval|synth|train) module=$stage ;;
  vote) module=committee ;;
  *) echo "usage: $0 pipeline|synth|vote|train|eval [ARGS...]" >&2; exit 2 ;;
esac
shift
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  commit="$commit.dirty"
fi
exec ray job submit --address "${RAY_ADDRESS:-http://127.0.0.1:8265}" --working-dir . \
  --runtime-env clusters/runtime_env.yaml \
  --submission-id "${SUBMISSION_ID:-o1e-$stage-$(date -u +%Y%m%dT%H%M%S)-${commit%.dirty}}" \
  --entrypoint-num-cpus "${ENTRYPOINT_CPUS:-1}" \
  -- env O1E_GIT_COMMIT="$commit" python -m "o1e.$module" "$@"
