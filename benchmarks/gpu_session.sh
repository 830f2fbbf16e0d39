#!/usr/bin/env bash
# The checks for a session lent a CUDA machine, as one command that fits a short lease:
#   1. a training run under torchrun on NCCL (one process per GPU; the CUDA, autocast and DDP code paths), resumed once;
#   2. paper-scale fp16 inference throughput of every step of the transition recipes beside the papers' im/s and
#      clips/s (benchmarks/gpu_throughput.py), one JSON per recipe;
#   3. our presets against their references at fp16: timm's twins (`ablab bench`), the official video Hiera
#      (benchmarks/video_vs_official.py, needs hiera-transformer).
#
#     OUT=/tmp/gpu bash benchmarks/gpu_session.sh     # writes $OUT/log.txt, ddp.txt, <recipe>.json, reference.txt
#     STAGES="reference" OUT=/tmp/gpu bash benchmarks/gpu_session.sh   # some stages only: ddp throughput reference
#
# The sweeps are shortened (one batch size per kind of input, 3 rounds of 0.5 s) so stages 1-2 end in about five
# minutes on one H200, stage 3 in about three; gpu_throughput.py with the profile's own sweep is the unhurried
# measurement.
set -uo pipefail
out=${OUT:-/tmp/gpu}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
gpus=$($python -c "import torch; print(torch.cuda.device_count())")
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    $python -c "import torch, timm; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__)"
} 2>&1 | tee "$out/log.txt"

stages=${STAGES:-ddp throughput reference}

# 1. NCCL: every GPU of the machine is one rank (two ranks on one GPU are refused by NCCL).
ddp=(-m torch.distributed.run --standalone --nproc_per_node "$gpus" -m ablab run recipes/sanity.yaml --steps vit
     --seeds 0 --set train.epochs=2 --no-throughput --results /tmp/ablab_ddp)
[[ $stages == *ddp* ]] && {
    echo "== torchrun, $gpus process(es), NCCL"
    timeout 240 $python "${ddp[@]}" && echo "== again: finished work is skipped" && timeout 60 $python "${ddp[@]}"
    echo "== exit $?"
    cat /tmp/ablab_ddp/sanity/*/vit/seed0/log.csv 2>/dev/null
} 2>&1 | tee "$out/ddp.txt"

# 2. Throughput: images at batch 256, clips at batch 32.
[[ $stages == *throughput* ]] && for recipe in vit_to_swin mvitv2_to_hiera mvitv2_to_hiera_video deit_to_hvt swin_mim; do
    batch=256
    [[ $recipe == *video* ]] && batch=32
    timeout 200 $python benchmarks/gpu_throughput.py "recipes/$recipe.yaml" --profile paper --amp fp16 \
        --batch-sizes "$batch" --rounds 3 --min-time 0.5 --json "$out/$recipe.json" 2>&1 | tee -a "$out/log.txt"
done

# 3. References: ours over theirs, timed alternately on the same batch.
[[ $stages == *reference* ]] && {
    timeout 240 $python -m ablab bench vit_b16 deit_s deit_ti swin_t swin_b mvitv2_b mvitv2_l hiera_b hiera_l hiera_h \
        --device cuda --amp --batch-size 64 --rounds 10
    timeout 150 $python benchmarks/video_vs_official.py --device cuda --amp --batch-size 8 --rounds 10
} 2>&1 | grep -v Warning | tee "$out/reference.txt"
exit 0
