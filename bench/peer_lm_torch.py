#!/usr/bin/env python3
"""GPT-2's forward pass in PyTorch eager, for `deno task bench:peer-lm`.

The same work as sae's LmForward on a GPT-2 model (src/lm/forward.ts), f32, inference: token and
learned position embeddings; per block LayerNorm, fused QKV projection, causal softmax attention
(scores / sqrt(head_dim)), output projection, residual, LayerNorm, MLP with gelu_new (tanh GELU),
residual; final LayerNorm and the tied unembedding at every position. Weights are random (std
0.02, as GPT-2's initialisation): the shape and work of the model, not its values.

A long-lived process so the caller can alternate our forward and this one: it prints one JSON line
describing itself (torch version, threads, the BLAS library loaded and OpenBLAS's core type), then
for every line `run` on stdin runs one forward and prints `{"s": seconds}`; `quit` or EOF ends it.
Installs nothing: needs `torch` (Debian: apt-get install -y python3-torch).
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

from peer_torch import blas_library, openblas_core


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    d, L, H, V, B, S = a.d, a.layers, a.heads, a.vocab, a.batch, a.context
    hd = d // H

    def rand(*shape: int, offset: float = 0.0) -> torch.Tensor:
        return torch.randn(*shape) * 0.02 + offset

    # Linear weights [out, in] as nn.Linear stores them (the Conv1D [in, out] of HF transposed).
    wte, wpe = rand(V, d), rand(1024, d)
    blocks = [
        {
            "ln1": (rand(d, offset=1.0), rand(d)),
            "qkv": (rand(3 * d, d), rand(3 * d)),
            "o": (rand(d, d), rand(d)),
            "ln2": (rand(d, offset=1.0), rand(d)),
            "fc": (rand(4 * d, d), rand(4 * d)),
            "proj": (rand(d, 4 * d), rand(d)),
        }
        for _ in range(L)
    ]
    ln_f = (rand(d, offset=1.0), rand(d))
    mask = torch.ones(S, S, dtype=torch.bool).tril()
    ids = torch.randint(0, V, (B, S), generator=torch.Generator().manual_seed(7))
    pos = torch.arange(S)

    def forward() -> torch.Tensor:
        x = wte[ids] + wpe[pos]
        for blk in blocks:
            h = F.layer_norm(x, (d,), *blk["ln1"], eps=1e-5)
            q, k, v = F.linear(h, *blk["qkv"]).split(d, dim=-1)
            q, k, v = (t.view(B, S, H, hd).transpose(1, 2) for t in (q, k, v))
            s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            y = s.masked_fill(~mask, float("-inf")).softmax(dim=-1) @ v
            x = x + F.linear(y.transpose(1, 2).reshape(B, S, d), *blk["o"])
            h = F.layer_norm(x, (d,), *blk["ln2"], eps=1e-5)
            x = x + F.linear(F.gelu(F.linear(h, *blk["fc"]), approximate="tanh"), *blk["proj"])
        return F.linear(F.layer_norm(x, (d,), *ln_f, eps=1e-5), wte)

    with torch.inference_mode():
        forward()  # warm-up: loads the BLAS library and sizes its buffers
        print(json.dumps({
            "torch_version": torch.__version__,
            "threads": torch.get_num_threads(),
            "blas": blas_library(),
            "openblas_core": openblas_core(),
            "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")},
        }), flush=True)
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "quit":
                break
            if cmd != "run":
                continue
            t0 = time.perf_counter()
            forward()
            print(json.dumps({"s": time.perf_counter() - t0}), flush=True)


if __name__ == "__main__":
    main()
