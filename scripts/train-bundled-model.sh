#!/usr/bin/env bash
# Train (or continue training) a bundled model, or one of its ablations, from its configs under
# configs/. Safe to re-run: data generation and training both resume. Publish it afterwards with
# scripts/publish_bundled_model.py (evaluation + model card into Resources/Models/NAME).
#   scripts/train-bundled-model.sh cardiac-demo [sadm|attention-only|diffusion-only] [extra sadm train flags]
# A model with configs/NAME-stage1.json (and -stage2.json, ...) trains in stages: stage 1 from scratch
# into runs/NAME-stage1, each next configs/NAME-stageK.json fine-tunes the one before
# (training.init_from) into runs/NAME-stageK, and configs/NAME.json fine-tunes the last into runs/NAME.
# An ablation follows the same stages with --variant, into runs/NAME-VARIANT-stageK and
# runs/NAME-VARIANT (each stage fine-tunes the ablation's own stage before), so that every stage of
# SADM has its ablations at equal steps.
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
  brain-demo)  # stages 1-4 on the phantom's template variety (one anatomy and ageing pattern), as trained
    $sadm data make-synthetic --kind brain --subjects 40 --seed 0 --out runs/data/brain-train --option voxel_mm=4.0 --option variety=template ;;
  *) echo "unknown bundled model $name" >&2; exit 2 ;;
esac
stages=()
k=1
while [ -f "configs/$name-stage$k.json" ]; do stages+=("$name-stage$k"); k=$((k + 1)); done
stages+=("$name")
previous=""
for stage in "${stages[@]}"; do
  run="runs/$stage"
  init=()
  if [ "$variant" != sadm ]; then
    run="runs/${stage/#$name/$name-$variant}"
    # the config's init_from names SADM's stage before; an ablation starts from its own
    [ -n "$previous" ] && init=(--init "$previous/model")
  fi
  extra=()
  [ "$stage" = "${stages[0]}" ] && extra=("$@")
  $sadm train "configs/$stage.json" --variant "$variant" "${init[@]}" --out "$run" --resume --no-progress "${extra[@]}"
  previous=$run
done
