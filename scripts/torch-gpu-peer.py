#!/usr/bin/env python3
"""torch-gpu-peer.py: PyTorch on the same GPU, as the peer that scripts/gpu-check.sh measures gpt-native against.

Written for this project. The device machines hold PyTorch 2.x with CUDA; nothing in the package or its tests
needs Python. Each mode prints one JSON record a line (the last line of `train` is its record).

Modes
  train      GPT-2 (pre-norm, learned positions, tied output embedding, GELU with the tanh form, LayerNorm eps
             1e-5) on random tokens: forward, loss, backward, global grad-norm clipping at 1.0, AdamW (betas 0.9,
             0.95, eps 1e-8, weight decay 0.1 on the 2-D weights; fused where torch has it), zero_grad. Which is
             what gpt-native's `bench train` times, and what a PyTorch user writes: bf16 autocast over fp32
             weights, F.scaled_dot_product_attention(is_causal=True), dropout off. --compile 1 adds
             torch.compile. tokens/s from the median step after warm-up steps (CUDA synchronised each step),
             and MFU with the same count as `bench train`: 6·N + causal attention FLOPs a token.
  attention  F.scaled_dot_product_attention, causal, bf16, (B, H, T, HS), with each backend torch has here (flash,
             cuDNN, memory-efficient): the forward and the backward (forward + backward less the forward),
             medians over CUDA events, TFLOP/s with `bench kernels`' count (causal half: 4·B·H·T²·HS/2 forward,
             2.5 times that backward).
  gemm       torch.matmul in bf16 at GPT-2's linear layers for B·T rows (--B, --T, --n-embd, --vocab): for each
             weight (K, N), the forward X·W (M×N×K), the input gradient dY·Wᵀ and the weight gradient Xᵀ·dY,
             median ms and TFLOP/s, for the same rows of `bench kernels`.

Examples
  python3 scripts/torch-gpu-peer.py train --B 16 --T 1024
  python3 scripts/torch-gpu-peer.py attention --B 16 --H 12 --T 1024 --HS 64
  python3 scripts/torch-gpu-peer.py gemm --B 16 --T 1024 --vocab 50304
  python3 scripts/torch-gpu-peer.py train --device cpu --n-layer 2 --n-embd 64 --n-head 2 --vocab 1000 --B 1 --T 32
"""
import argparse
import json
import math
import statistics
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["train", "attention", "gemm"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--n-layer", type=int, default=12)
    ap.add_argument("--n-head", type=int, default=12)
    ap.add_argument("--n-embd", type=int, default=768)
    ap.add_argument("--vocab", type=int, default=50257,
                    help="vocabulary rows (50304 is nanoGPT's padded count; gpt-native pads its GPU lm head itself)")
    ap.add_argument("--B", type=int, default=16)
    ap.add_argument("--T", type=int, default=1024)
    ap.add_argument("--H", type=int, default=12, help="attention: heads")
    ap.add_argument("--HS", type=int, default=64, help="attention: head size")
    ap.add_argument("--steps", type=int, default=5, help="train: measured steps; attention: timed calls")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--compile", type=int, default=0, help="train: 1 = torch.compile the model")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="MFU's peak (default 989 for bf16, 67 for fp32: H100/H200 dense, as bench train)")
    ap.add_argument("--seed", type=int, default=1337)
    return ap.parse_args()


args = parse_args()

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DEV = torch.device(args.device)
CUDA = DEV.type == "cuda"


def sync():
    if CUDA:
        torch.cuda.synchronize()


def attend(q, k, v):
    """Causal attention over (B, H, T, HS); the explicit form where torch has no SDPA (1.x)."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    T = q.size(-2)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    return att.masked_fill(~mask, float("-inf")).softmax(-1) @ v


class Block(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.c_attn = nn.Linear(C, 3 * C)
        self.attn_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (z.view(B, T, self.H, C // self.H).transpose(1, 2) for z in (q, k, v))
        y = attend(q, k, v).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, C, H, V, T):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.blocks = nn.ModuleList(Block(C, H) for _ in range(L))
        self.ln_f = nn.LayerNorm(C, eps=1e-5)
        for name, p in self.named_parameters():  # GPT-2's initialisation
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied output embedding
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))  # (autocast takes it in fp32)


def train():
    torch.manual_seed(args.seed)
    B, T = args.B, args.T
    model = GPT(args.n_layer, args.n_embd, args.n_head, args.vocab, T).to(DEV)
    N = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}]
    fused = False
    try:
        opt = torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95), eps=1e-8, fused=CUDA)
        fused = CUDA
    except (TypeError, RuntimeError):  # torch without fused AdamW
        opt = torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    if args.compile and not hasattr(torch, "compile"):
        print(json.dumps({"peer": "pytorch", "mode": "train", "torch": torch.__version__, "compile": True,
                          "error": f"torch {torch.__version__} has no torch.compile"}), flush=True)
        return
    fwd = torch.compile(model) if args.compile else model
    bf16 = args.precision == "bf16"
    if CUDA and not bf16:  # fp32 as gpt-native's fp32 (no TF32)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    g = torch.Generator(device="cpu").manual_seed(args.seed)
    idx = torch.randint(0, args.vocab, (B, T), generator=g).to(DEV)
    tgt = torch.randint(0, args.vocab, (B, T), generator=g).to(DEV)
    losses = []

    def step():
        sync()
        t0 = time.perf_counter()
        with torch.autocast(device_type=DEV.type, dtype=torch.bfloat16, enabled=bf16):
            loss = fwd(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        losses.append(loss.item())
        return (time.perf_counter() - t0) * 1000

    t_first = time.perf_counter()
    for _ in range(args.warmup):
        step()
    warm_s = time.perf_counter() - t_first
    runs = sorted(step() for _ in range(args.steps))
    ms = runs[len(runs) // 2]
    flops = 6 * N * B * T + 12 * args.n_layer * B * T * T * args.n_embd / 2
    peak = args.peak_tflops or (989 if bf16 else 67)
    rec = {
        "peer": "pytorch", "mode": "train", "torch": torch.__version__, "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if CUDA else None, "precision": args.precision,
        "compile": bool(args.compile), "fusedAdamW": fused, "sdpa": hasattr(F, "scaled_dot_product_attention"),
        "nLayer": args.n_layer, "nEmbd": args.n_embd, "nHead": args.n_head, "vocab": args.vocab, "params": N,
        "batch": B, "seq": T, "msPerStep": ms, "tokensPerSec": B * T / (ms / 1000), "warmupSeconds": warm_s,
        "mfu": flops / (ms / 1000) / (peak * 1e12), "peakTflops": peak, "firstLoss": losses[0], "lastLoss": losses[-1],
    }
    if not all(math.isfinite(x) for x in losses):
        raise SystemExit(f"torch-gpu-peer: a loss is not finite: {losses}")
    print(json.dumps(rec), flush=True)


def timed(fn, n):
    """Median milliseconds of fn over n calls (CUDA events on a GPU, wall clock elsewhere)."""
    out = []
    for _ in range(n):
        if CUDA:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            out.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def attention():
    torch.manual_seed(args.seed)
    B, H, T, HS = args.B, args.H, args.T, args.HS
    dt = torch.bfloat16 if args.precision == "bf16" else torch.float32
    q, k, v = (torch.randn(B, H, T, HS, device=DEV, dtype=dt, requires_grad=True) for _ in range(3))
    dout = torch.randn(B, H, T, HS, device=DEV, dtype=dt)
    flops = 4 * B * H * T * T * HS / 2
    backends = [("default", None)]
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        backends += [(name, getattr(SDPBackend, attr)) for name, attr in
                     (("flash", "FLASH_ATTENTION"), ("cudnn", "CUDNN_ATTENTION"), ("efficient", "EFFICIENT_ATTENTION"))
                     if hasattr(SDPBackend, attr)] if CUDA else []
    except ImportError:
        sdpa_kernel = None
    for name, backend in backends:
        rec = {"peer": "pytorch", "mode": "attention", "torch": torch.__version__, "backend": name,
               "batch": B, "heads": H, "seq": T, "headSize": HS, "precision": args.precision}
        try:
            ctx = sdpa_kernel(backend) if backend is not None else torch.enable_grad()

            def fwd():
                with torch.no_grad():
                    attend(q, k, v)

            def fwd_bwd():
                q.grad = k.grad = v.grad = None
                attend(q, k, v).backward(dout)

            with ctx:
                for _ in range(args.warmup):
                    fwd()
                    fwd_bwd()
                f_ms = timed(fwd, args.steps)
                fb_ms = timed(fwd_bwd, args.steps)
            b_ms = max(fb_ms - f_ms, 1e-6)
            rec.update(forwardMs=f_ms, backwardMs=b_ms, forwardTflops=flops / (f_ms * 1e9),
                       backwardTflops=2.5 * flops / (b_ms * 1e9))
        except Exception as e:  # a backend this GPU, dtype or shape does not have
            rec.update(error=str(e).splitlines()[0][:200] if str(e) else type(e).__name__)
        print(json.dumps(rec), flush=True)


def gemm():
    torch.manual_seed(args.seed)
    M, C = args.B * args.T, args.n_embd
    dt = torch.bfloat16 if args.precision == "bf16" else torch.float32
    if CUDA and dt == torch.float32:
        torch.backends.cuda.matmul.allow_tf32 = False
    for name, K, N in (("qkv", C, 3 * C), ("attn proj", C, C), ("mlp fc", C, 4 * C), ("mlp proj", 4 * C, C),
                       ("lm head", C, args.vocab)):
        x = torch.randn(M, K, device=DEV, dtype=dt)
        w = torch.randn(K, N, device=DEV, dtype=dt) * 0.02
        dy = torch.randn(M, N, device=DEV, dtype=dt)
        rec = {"peer": "pytorch", "mode": "gemm", "torch": torch.__version__, "layer": name, "M": M, "N": N, "K": K,
               "precision": args.precision}
        for form, fn in (("forward", lambda: x @ w), ("dX", lambda: dy @ w.t()), ("dW", lambda: x.t() @ dy)):
            for _ in range(args.warmup):
                fn()
            ms = timed(fn, args.steps)
            rec[form + "Ms"] = ms
            rec[form + "Tflops"] = 2 * M * N * K / (ms * 1e9)
        print(json.dumps(rec), flush=True)
        del x, w, dy


if __name__ == "__main__":
    {"train": train, "attention": attention, "gemm": gemm}[args.mode]()
