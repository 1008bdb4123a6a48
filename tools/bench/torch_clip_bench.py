#!/usr/bin/env python3
"""PyTorch side of `host bench`: the HF CLIP ViT-B/32 image tower (random init) adapted
by peft LoRA r=4 on q,v, by KAdaptation (written here as kadapt's plan defines it), or
fully fine-tuned, with the paper's head (BatchNorm1d without affine, then Linear) and
AdamW; eager mode, as researchers run it. For each it times a training step and an
inference forward at a batch size and precision and prints one line per measurement in
`host bench`'s RESULT format, so a script can pair the two and report ratios from one
device session (core/backend/cuda/gpurun.sh does).

    python tools/bench/torch_clip_bench.py --batch 256 --precision tf32 --plugin lora
"""
import argparse
import time

import torch


class KAdaptLinear(torch.nn.Module):
    """A frozen nn.Linear plus kadapt's KAdaptation delta:
    ΔW = scale · Σ_i (a_i b_iᵀ) ⊗ (u_i v_iᵀ), slow a, b shared across layers, fast u, v
    per layer, merged into the weight each forward (kadapt's weight-delta form)."""

    def __init__(self, base, slow_a, slow_b, n, scale, bias):
        super().__init__()
        self.base, self.slow_a, self.slow_b, self.scale = base, slow_a, slow_b, scale
        m = base.in_features // n
        self.u = torch.nn.Parameter(torch.randn(n, m, 1, device=base.weight.device) * 0.02)
        self.v = torch.nn.Parameter(torch.zeros(n, 1, m, device=base.weight.device))
        self.bias = torch.nn.Parameter(torch.zeros(base.out_features, device=base.weight.device)) if bias else None

    def forward(self, x):
        slow = self.slow_a @ self.slow_b  # [n, n, n]
        fast = self.u @ self.v  # [n, m, m]
        n, m = slow.shape[1], fast.shape[1]
        delta = torch.einsum("ipq,irs->prqs", slow, fast).reshape(n * m, n * m)
        b = self.base.bias if self.bias is None else self.base.bias + self.bias
        return torch.nn.functional.linear(x, self.base.weight + self.scale * delta, b)


def kadaptation(model, n=32, scale=1.0, lim=0.01):
    for p in model.parameters():
        p.requires_grad_(False)
    dev = next(model.parameters()).device
    shared = {}
    for t in ("q_proj", "v_proj"):
        a = torch.nn.Parameter(torch.empty(n, n, 1, device=dev).uniform_(-lim, lim))
        b = torch.nn.Parameter(torch.empty(n, 1, n, device=dev).uniform_(-lim, lim))
        shared[t] = (a, b)
        model.register_parameter("kadapt_" + t + "_a", a)
        model.register_parameter("kadapt_" + t + "_b", b)
    for layer in model.vision_model.encoder.layers:
        attn = layer.self_attn
        for t in ("q_proj", "v_proj"):
            a, b = shared[t]
            setattr(attn, t, KAdaptLinear(getattr(attn, t), a, b, n, scale, bias=t == "q_proj"))
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    ap.add_argument("--plugin", choices=["lora", "kadaptation", "finetune", "linearprobe"], default="lora")
    ap.add_argument("--classes", type=int, default=10)
    a = ap.parse_args()
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(1)
    torch.backends.cuda.matmul.allow_tf32 = a.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = a.precision == "tf32"
    cfg = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=32, projection_dim=512, hidden_act="quick_gelu")
    model = CLIPVisionModelWithProjection(cfg).cuda()
    if a.plugin == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=128, target_modules=["q_proj", "v_proj"]))
    elif a.plugin == "kadaptation":
        model = kadaptation(model)
    elif a.plugin == "linearprobe":
        model.requires_grad_(False)
    head = torch.nn.Sequential(torch.nn.BatchNorm1d(512, affine=False), torch.nn.Linear(512, a.classes)).cuda()
    params = [p for p in list(model.parameters()) + list(head.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    x = torch.randn(a.batch, 3, 224, 224, device="cuda")
    y = torch.randint(0, a.classes, (a.batch,), device="cuda")

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.precision == "bf16")

    def train():
        model.train()
        head.train()
        with autocast():
            loss = torch.nn.functional.cross_entropy(head(model(pixel_values=x).image_embeds), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def infer():
        model.eval()
        head.eval()
        with torch.no_grad(), autocast():
            head(model(pixel_values=x).image_embeds)

    def measure(mode, f):
        for _ in range(2):
            f()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        for _ in range(a.steps):
            f()
        torch.cuda.synchronize()
        ips = a.batch * a.steps / (time.perf_counter() - t)
        print(f"RESULT impl=pytorch mode={mode} plugin={a.plugin} precision={a.precision} batch={a.batch} "
              f"images_per_s={ips:.1f} peak_alloc_gib={torch.cuda.max_memory_allocated() / 2**30:.2f} "
              f"peak_reserved_gib={torch.cuda.max_memory_reserved() / 2**30:.2f}", flush=True)

    print(f"pytorch {torch.__version__} on {torch.cuda.get_device_name()}; trainable {sum(p.numel() for p in params)}")
    measure("train", train)
    measure("infer", infer)


if __name__ == "__main__":
    main()
