#!/usr/bin/env bash
# Every training run the bundled models need, one after the other; each resumes where it stopped,
# so after an interruption run this again:  nohup nice -n 5 scripts/train-bundled-queue.sh > runs/queue.out 2>&1 &
# The ablations stop at 1000 steps of the stage-1 3000-step schedule: they are compared with the
# cardiac-demo stage-1 checkpoint kept at step 1000 (training.keep_every).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/train-bundled-model.sh cardiac-demo
scripts/train-bundled-model.sh cardiac-demo attention-only --stop-at 1000
scripts/train-bundled-model.sh cardiac-demo diffusion-only --stop-at 1000
scripts/train-bundled-model.sh brain-demo
