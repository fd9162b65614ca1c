#!/usr/bin/env bash
# Train (or continue training) a bundled model, or one of its ablations, from its configs under
# configs/. Safe to re-run: data generation and training both resume. Publish it afterwards with
# scripts/publish_bundled_model.py (evaluation + model card into Resources/Models/NAME).
#   scripts/train-bundled-model.sh cardiac-demo [sadm|attention-only|diffusion-only] [extra sadm train flags]
# A model with a configs/NAME-stage1.json trains in two stages: stage 1 from scratch into
# runs/NAME-stage1, then configs/NAME.json fine-tunes it (training.init_from) into runs/NAME.
# An ablation follows the same two stages with --variant, into runs/NAME-VARIANT-stage1 and
# runs/NAME-VARIANT (stage 2 fine-tunes the ablation's own stage 1), so that every stage of SADM has
# its ablations at equal steps.
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
first="configs/$name.json"
[ -f "configs/$name-stage1.json" ] && first="configs/$name-stage1.json"
run="runs/$name"
init=()
if [ "$variant" != sadm ]; then
  run="runs/$name-$variant"
  init=(--init "$run-stage1/model")  # configs/NAME.json's init_from names SADM's stage 1
fi
if [ "$first" != "configs/$name.json" ]; then
  $sadm train "$first" --variant "$variant" --out "$run-stage1" --resume --no-progress "$@"
  $sadm train "configs/$name.json" --variant "$variant" "${init[@]}" --out "$run" --resume --no-progress
else
  $sadm train "$first" --variant "$variant" --out "$run" --resume --no-progress "$@"
fi
