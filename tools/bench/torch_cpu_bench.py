#!/usr/bin/env python3
"""PyTorch CPU side of `host bench`: CLIP ViT-B/32's image tower (random init) written in
plain torch (no transformers or peft, so Debian's python3-torch is all it needs), with
LoRA r=4 on q and v, KAdaptation as kadapt's plan defines it (torch_clip_bench.py's
KAdaptLinear), full fine-tuning, or a frozen backbone; the paper's head (BatchNorm1d
without affine, then Linear); AdamW; fp32; eager. It prints `host bench`'s RESULT lines
for a training step and an inference forward. tools/bench/cpu_vs_torch.sh runs it
interleaved with `host bench` and prints the ratios.

    OMP_WAIT_POLICY=PASSIVE python3 tools/bench/torch_cpu_bench.py --plugin lora --batch 8 --threads 2
"""
import argparse
import math
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_clip_bench import KAdaptLinear  # noqa: E402  (one definition of kadapt's delta)


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus peft's LoRA branch: x·Aᵀ·Bᵀ·(alpha/r), B zero-initialised."""

    def __init__(self, base, r=4, alpha=128):
        super().__init__()
        self.base, self.scale = base, alpha / r
        self.a = nn.Parameter(torch.empty(r, base.in_features))
        nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))
        self.b = nn.Parameter(torch.zeros(base.out_features, r))

    def forward(self, x):
        return self.base(x) + (x @ self.a.t() @ self.b.t()) * self.scale


class Block(nn.Module):
    """A CLIP encoder layer: pre-LN attention and a QuickGELU MLP, as in HF's CLIPEncoderLayer."""

    def __init__(self, d=768, heads=12, mlp=3072):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, mlp), nn.Linear(mlp, d)

    def forward(self, x):
        b, t, d = x.shape
        h, dh = self.heads, d // self.heads
        y = self.ln1(x)
        q = (self.q_proj(y) * dh ** -0.5).view(b, t, h, dh).transpose(1, 2)
        k = self.k_proj(y).view(b, t, h, dh).transpose(1, 2)
        v = self.v_proj(y).view(b, t, h, dh).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        x = x + self.out_proj((att @ v).transpose(1, 2).reshape(b, t, d))
        y = self.fc1(self.ln2(x))
        return x + self.fc2(y * torch.sigmoid(1.702 * y))


class Vision(nn.Module):
    """CLIP ViT-B/32's image tower with its 512-wide projection."""

    def __init__(self, width=768, layers=12, patch=32, image=224, proj=512):
        super().__init__()
        self.patch = nn.Conv2d(3, width, patch, patch, bias=False)
        self.cls = nn.Parameter(torch.randn(width) * 0.02)
        self.pos = nn.Parameter(torch.randn((image // patch) ** 2 + 1, width) * 0.02)
        self.ln_pre, self.ln_post = nn.LayerNorm(width), nn.LayerNorm(width)
        self.layers = nn.ModuleList(Block(width) for _ in range(layers))
        self.proj = nn.Linear(width, proj, bias=False)

    def forward(self, px):
        x = self.patch(px).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], 1, -1), x], dim=1) + self.pos
        x = self.ln_pre(x)
        for layer in self.layers:
            x = layer(x)
        return self.proj(self.ln_post(x[:, 0]))


def adapt(model, plugin):
    if plugin == "finetune":
        return
    model.requires_grad_(False)
    if plugin == "lora":
        for layer in model.layers:
            layer.q_proj, layer.v_proj = LoRALinear(layer.q_proj), LoRALinear(layer.v_proj)
    elif plugin == "kadaptation":
        n, lim = 32, 0.01
        for t in ("q_proj", "v_proj"):
            a = nn.Parameter(torch.empty(n, n, 1).uniform_(-lim, lim))
            b = nn.Parameter(torch.empty(n, 1, n).uniform_(-lim, lim))
            model.register_parameter("kadapt_" + t + "_a", a)
            model.register_parameter("kadapt_" + t + "_b", b)
            for layer in model.layers:
                setattr(layer, t, KAdaptLinear(getattr(layer, t), a, b, n, 1.0, bias=t == "q_proj"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plugin", choices=["lora", "kadaptation", "finetune", "linearprobe"], default="lora")
    ap.add_argument("--classes", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = Vision()
    adapt(model, a.plugin)
    head = nn.Sequential(nn.BatchNorm1d(512, affine=False), nn.Linear(512, a.classes))
    params = [p for p in list(model.parameters()) + list(head.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    x = torch.randn(a.batch, 3, 224, 224)
    y = torch.randint(0, a.classes, (a.batch,))

    def train():
        model.train()
        head.train()
        nn.functional.cross_entropy(head(model(x)), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def infer():
        model.eval()
        head.eval()
        with torch.no_grad():
            head(model(x))

    def measure(mode, f):
        for _ in range(2):
            f()
        t = time.perf_counter()
        for _ in range(a.steps):
            f()
        ips = a.batch * a.steps / (time.perf_counter() - t)
        print(f"RESULT impl=pytorch mode={mode} plugin={a.plugin} precision=fp32 batch={a.batch} "
              f"images_per_s={ips:.2f} device=cpu threads={a.threads}", flush=True)

    print(f"pytorch {torch.__version__} on the CPU, {a.threads} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; "
          f"trainable {sum(p.numel() for p in params)}", flush=True)
    measure("train", train)
    measure("infer", infer)


if __name__ == "__main__":
    main()
