#!/usr/bin/env bash
# Every training run the bundled models need, one after the other; each resumes where it stopped,
# so after an interruption run this again:  nohup nice -n 5 scripts/train-bundled-queue.sh > runs/queue.out 2>&1 &
# The ablations follow SADM's recipe (brain-demo: both stages), so that SADM is compared with its
# ablations at equal steps (kept checkpoints). On the 2-core CPU, cardiac-demo's 20 000 steps take
# about 4 h (SADM, 2 threads; 7 h at 1 thread), 2 h (attention-only) and 6 h (diffusion-only) at 1 thread.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/train-bundled-model.sh cardiac-demo
scripts/train-bundled-model.sh cardiac-demo attention-only
scripts/train-bundled-model.sh cardiac-demo diffusion-only
scripts/train-bundled-model.sh brain-demo
