#!/usr/bin/env bash
# Every training run the bundled models need, one after the other; each resumes where it stopped,
# so after an interruption run this again:  nohup nice -n 5 scripts/train-bundled-queue.sh > runs/queue.out 2>&1 &
# The ablations run SADM's two stages too (from scratch, then fine-tuning their own stage 1), so
# that each SADM stage is compared with its ablations at equal steps. On the 2-core CPU the three
# cardiac runs take about 1.9 h (SADM), 0.4 h (attention-only) and 1.4 h (diffusion-only) at 1 thread.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/train-bundled-model.sh cardiac-demo
scripts/train-bundled-model.sh cardiac-demo attention-only
scripts/train-bundled-model.sh cardiac-demo diffusion-only
scripts/train-bundled-model.sh brain-demo
