#!/usr/bin/env bash
# Train (or continue training) a bundled model, or one of its ablations, from its config under
# configs/. Safe to re-run: data generation and training both resume. Publish it afterwards with
# scripts/publish_bundled_model.py (evaluation + model card into Resources/Models/NAME).
#   scripts/train-bundled-model.sh cardiac-demo [sadm|attention-only|diffusion-only] [extra sadm train flags]
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/train-bundled-model.sh NAME [VARIANT] [sadm train flags]}
shift
variant=sadm
case "${1:-}" in
  sadm|attention-only|diffusion-only) variant=$1; shift ;;
esac
sadm=${SADM:-.venv/bin/sadm}
case "$name" in
  cardiac-demo) $sadm data make-synthetic --kind cardiac --subjects 60 --seed 0 --out runs/data/cardiac-train ;;
  brain-demo)   $sadm data make-synthetic --kind brain --subjects 40 --seed 0 --out runs/data/brain-train --option voxel_mm=4.0 ;;
  *) echo "unknown bundled model $name" >&2; exit 2 ;;
esac
if [ "$variant" = sadm ]; then
  out="runs/$name"
else
  out="runs/$name-$variant"
fi
$sadm train "configs/$name.json" --variant "$variant" --out "$out" --resume --no-progress "$@"
