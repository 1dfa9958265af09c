"""Run this machine's Python as if its CPU had AVX2 but no AVX-512 (no native bf16): for measuring, on an AVX-512
host, roughly what an AVX2-only laptop or VM gets. Not imported by minAZR itself; put this folder first on
PYTHONPATH, and every Python process started from that shell (Ray workers and vLLM engines included) loads it:

    PYTHONPATH=minazr/bench/avx2 .venv/bin/minazr bench ...      # docs/benchmarks.md#avx2-only-cpus

It caps the ISA of each library that picks its kernels at run time: PyTorch's own kernels (ATEN_CPU_CAPABILITY),
oneDNN (ONEDNN_MAX_CPU_ISA), MKL (MKL_ENABLE_INSTRUCTIONS); makes vLLM load its AVX2 kernel build (it asks
torch.cpu which ISA the CPU has); and hides the bf16 flags from minAZR's dtype choice (MINAZR_CPU_FLAGS). Clock,
caches and memory bandwidth stay this machine's, so figures are an estimate, labelled as such.
"""

import os
import sys

os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
os.environ.setdefault("MKL_ENABLE_INSTRUCTIONS", "AVX2")
os.environ.setdefault("MINAZR_CPU_FLAGS", "fpu sse4_2 avx avx2 fma f16c")
os.environ.setdefault("MINAZR_EMULATED_CPU", "avx2")


class _PatchTorchCpu:
    """After `torch.cpu` is imported, report no AVX-512, AVX-512 BF16 or AMX (what vLLM checks)."""

    def find_spec(self, name, path, target=None):
        if name != "torch.cpu":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(name)
        loader = spec.loader
        exec_module = loader.exec_module

        def patched(module):
            exec_module(module)
            for attr in ("_is_avx512_supported", "_is_avx512_bf16_supported", "_is_avx512_vnni_supported",
                         "_is_amx_tile_supported", "_is_amx_fp16_supported"):
                if hasattr(module, attr):
                    setattr(module, attr, lambda: False)

        loader.exec_module = patched
        return spec


sys.meta_path.insert(0, _PatchTorchCpu())
