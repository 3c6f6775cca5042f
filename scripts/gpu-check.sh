#!/usr/bin/env bash
# npm run gpu-check [-- --software] : the GPU path checked on whatever GPU is at hand, in one command.
#   1. what is there: nvidia-smi, the Vulkan driver Dawn (ONNX Runtime's WebGPU) will use, the CUDA provider;
#   2. the WebGPU parity subset (test/webgpu.test.ts: tiny-sd15 UNet call with every tap, text-to-image
#      g7.5; VISPROMPT_WEBGPU_FULL=1 adds g1, DDIM inversion and InDetail-IP) against the diffusers goldens;
#   3. the same subset on CUDA, when onnxruntime-node's CUDA provider is installed
#      (ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node, with network);
#   4. benchmarks: the tiny UNet step on cpu / webgpu / cuda, and the SD 1.5 UNet CFG step at 512x512
#      (random weights, `unet_step`) on each GPU device;
#   5. the browser demo (test/browser-demo.test.ts) with Chromium's WebGPU on this GPU, when chromium exists.
# --software: no GPU needed, SwiftShader from Debian's chromium (what CI and the development machine have).
# Everything goes to test-output/gpu-check/<time>.log and a summary at the end; exit status 1 if a check failed.
set -u
cd "$(dirname "$0")/.."
software=0; full=0
for a in "$@"; do
  case "$a" in
    --software) software=1 ;;
    --full) full=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown option $a (expected --software, --full)" >&2; exit 2 ;;
  esac
done
out=test-output/gpu-check; mkdir -p "$out"
log="$out/$(date -u +%Y%m%dT%H%M%SZ).log"
summary=()
failed=0
say() { echo "$*" | tee -a "$log"; }
step() { # step NAME command...: run, log, remember pass/fail
  local name=$1; shift
  say ""; say "== $name: $*"
  local t0=$SECONDS
  if "$@" 2>&1 | tee -a "$log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then summary+=("ok    $name ($((SECONDS - t0)) s)")
  else summary+=("FAIL  $name ($((SECONDS - t0)) s)"); failed=1; fi
}

[ -f dist/src/index.js ] && [ -f dist/web-demo/index.html ] || npm run build

say "visprompt gpu-check $(date -u) on $(hostname)"
if command -v nvidia-smi >/dev/null; then nvidia-smi -L 2>&1 | tee -a "$log"; else say "nvidia-smi: not found"; fi

# The Vulkan driver for Dawn: SwiftShader with --software; else the GPU's ICD (NVIDIA's where installed).
swiftshader=/usr/lib/chromium/vk_swiftshader_icd.json
if [ $software = 1 ]; then
  [ -f $swiftshader ] || { say "--software needs Debian's chromium ($swiftshader)"; exit 2; }
  export VK_ICD_FILENAMES=$swiftshader VISPROMPT_SOFTWARE_GPU=1
else
  for icd in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do
    [ -z "${VK_ICD_FILENAMES:-}" ] && [ -f $icd ] && export VK_ICD_FILENAMES=$icd
  done
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
# Dawn loads libvulkan.so.1; chromium ships one when the system has none.
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' && [ -f /usr/lib/chromium/libvulkan.so.1 ]; then
  export LD_LIBRARY_PATH=/usr/lib/chromium${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
say "Vulkan driver: ${VK_ICD_FILENAMES:-system default}; LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
cuda=0
if ls node_modules/onnxruntime-node/bin/napi-v*/linux/x64/*providers_cuda* >/dev/null 2>&1; then cuda=1; say "CUDA provider: installed"
else say "CUDA provider: not installed (ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node), CUDA checks skipped"; fi
[ $full = 1 ] && export VISPROMPT_WEBGPU_FULL=1

# The parity subset in this process's environment (the child mode of the test: no SwiftShader defaults).
step "webgpu parity" env VISPROMPT_WEBGPU_CHILD=1 node --test --test-reporter=spec dist/test/webgpu.test.js
[ $cuda = 1 ] && step "cuda parity" env VISPROMPT_WEBGPU_CHILD=1 VISPROMPT_PARITY_DEVICE=cuda node --test --test-reporter=spec dist/test/webgpu.test.js

step "bench tiny UNet step per device" node dist/bench/bench.js --only tiny_unet_step_devices --runs 5
if [ $software = 0 ]; then
  step "bench SD 1.5 unet_step on webgpu" env VISPROMPT_BENCH_DEVICE=webgpu node dist/bench/bench.js --only unet_step --runs 5
  [ $cuda = 1 ] && step "bench SD 1.5 unet_step on cuda" env VISPROMPT_BENCH_DEVICE=cuda node dist/bench/bench.js --only unet_step --runs 5
fi

if [ -x /usr/bin/chromium ]; then
  # Chromium's WebGPU on the machine's GPU (Vulkan); SwiftShader with --software.
  [ $software = 0 ] && export VISPROMPT_BROWSER_WEBGPU_ARGS="--enable-features=Vulkan --ignore-gpu-blocklist --use-angle=vulkan"
  step "browser demo" node --test --test-reporter=spec dist/test/browser-demo.test.js
fi

say ""; say "== summary (log: $log)"
for s in "${summary[@]}"; do say "$s"; done
grep -hE "^webgpu |^browser demo |^tiny_unet_step_devices|^unet_step" "$log" | sort -u | tee -a "$log.summary"
exit $failed
