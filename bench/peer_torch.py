#!/usr/bin/env python3
"""The SAE training step of sae's baseline in PyTorch eager, for `deno task bench:peer`.

Same shapes and work as one step of src/sae/step.ts (f32): x_c = x - b_dec; f = ReLU(x_c W_enc^T +
b_enc); x_hat = f W_dec + b_dec; loss = mean_b ||x - x_hat||^2 (or mean_b ||x - x_hat|| with
--loss l2) + l1 * mean_b sum f; backward (autograd); the decoder-gradient projection that keeps
rows unit-norm; torch.optim.AdamW (decoupled weight decay, as ours); rows of W_dec renormalised.

A long-lived process so the caller can alternate our step and this one (bench/torch_peer.ts): after
--warmup steps it prints one JSON line describing itself (torch version, threads, the BLAS library
loaded, OpenBLAS's core type, the OPENBLAS_* variables it saw, the shape), then answers each line on
stdin: `run` does one step and prints `{"s": seconds}`, `l0` prints `{"l0": mean active latents per
row}`; `quit` or EOF ends it. Installs nothing: needs `torch` (Debian: apt-get install -y
python3-torch).
"""
import argparse
import ctypes
import json
import os
import sys
import time

import torch


def blas_library() -> str:
    """The BLAS shared library this process loaded (Debian's torch uses libblas.so.3, whichever
    implementation the alternatives system points it at: reference BLAS unless OpenBLAS or BLIS is
    installed)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
        return ", ".join(sorted(os.path.realpath(p) for p in libs)) or "unknown"
    except OSError:
        return "unknown"


def openblas_core() -> str:
    """OpenBLAS's core type and build config where OpenBLAS is the BLAS loaded, else "not OpenBLAS"."""
    for path in blas_library().split(", "):
        try:
            lib = ctypes.CDLL(path)
            name, config = lib.openblas_get_corename, lib.openblas_get_config
        except (OSError, AttributeError):
            continue
        name.restype = config.restype = ctypes.c_char_p
        return f"{name().decode()} ({config().decode()})"
    return "not OpenBLAS"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--d-in", type=int, default=512)
    ap.add_argument("--d-sae", type=int, default=4096)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--loss", choices=["squared", "l2"], default="squared")
    ap.add_argument("--l1", type=float, default=0.3)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--density", type=float, default=None,
                    help="set b_enc so each latent fires on about this fraction of the rows")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    g = torch.Generator().manual_seed(1)
    B, d, m = a.batch, a.d_in, a.d_sae
    w_dec = torch.randn(m, d, generator=g)
    w_dec /= w_dec.norm(dim=1, keepdim=True)
    params = {
        "w_enc": w_dec.clone().to(dev).requires_grad_(),
        "b_enc": torch.zeros(m, device=dev, requires_grad=True),
        "w_dec": w_dec.to(dev).requires_grad_(),
        "b_dec": torch.zeros(d, device=dev, requires_grad=True),
    }
    opt = torch.optim.AdamW(params.values(), lr=a.lr, weight_decay=a.weight_decay, eps=1e-8)
    x = torch.sin(torch.arange(B * d, dtype=torch.float32)).reshape(B, d).to(dev)
    if a.density is not None:
        # b_enc_j = -(the (1 - density) quantile of latent j's pre-activations on this batch),
        # as bench/peer.ts does for ours: about density·d_sae latents fire per row.
        with torch.no_grad():
            pre = x @ params["w_enc"].T
            params["b_enc"] -= torch.quantile(pre, 1 - a.density, dim=0)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def step() -> None:
        p = params
        opt.zero_grad(set_to_none=True)
        f = torch.relu((x - p["b_dec"]) @ p["w_enc"].T + p["b_enc"])
        r = x - (f @ p["w_dec"] + p["b_dec"])
        sq = r.pow(2).sum(dim=1)
        recon = sq.mean() if a.loss == "squared" else sq.sqrt().mean()
        loss = recon + a.l1 * f.sum(dim=1).mean()
        loss.backward()
        with torch.no_grad():
            wd, gd = p["w_dec"], p["w_dec"].grad
            gd -= (gd * wd).sum(dim=1, keepdim=True) * wd
            opt.step()
            wd /= wd.norm(dim=1, keepdim=True)

    def l0() -> float:
        with torch.no_grad():
            p = params
            pre = (x - p["b_dec"]) @ p["w_enc"].T + p["b_enc"]
            return float((pre > 0).sum(dim=1).float().mean())

    for _ in range(a.warmup):
        step()
    sync()
    print(json.dumps({
        "torch_version": torch.__version__,
        "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
        "threads": torch.get_num_threads(),
        "blas": blas_library(),
        "openblas_core": openblas_core(),
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")},
        "batch": B,
        "d_in": d,
        "d_sae": m,
    }), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        if cmd == "run":
            t0 = time.perf_counter()
            step()
            sync()
            print(json.dumps({"s": time.perf_counter() - t0}), flush=True)
        elif cmd == "l0":
            print(json.dumps({"l0": l0()}), flush=True)
        else:
            print(json.dumps({"error": f"unknown command {cmd!r}"}), flush=True)


if __name__ == "__main__":
    main()
