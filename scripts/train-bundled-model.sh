#!/usr/bin/env bash
# Train (or continue training) a bundled model from its config under configs/, then copy its EMA
# weights into Resources/Models/NAME. Safe to re-run: data generation and training both resume.
#   scripts/train-bundled-model.sh cardiac-demo [extra sadm train flags]
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/train-bundled-model.sh NAME [sadm train flags]}
shift
sadm=${SADM:-.venv/bin/sadm}
case "$name" in
  cardiac-demo) $sadm data make-synthetic --kind cardiac --subjects 60 --seed 0 --out runs/data/cardiac-train ;;
  brain-demo)   $sadm data make-synthetic --kind brain --subjects 40 --seed 0 --out runs/data/brain-train --option voxel_mm=4.0 ;;
  *) echo "unknown bundled model $name" >&2; exit 2 ;;
esac
$sadm train "configs/$name.json" --out "runs/$name" --resume --no-progress "$@"
