#!/usr/bin/env python3
"""PyTorch side of `host bench`: HF CLIP ViT-B/32 image tower (random init) with peft
LoRA r=4 on q,v (or full fine-tuning, or a frozen forward), AdamW, at a batch size and
precision, reporting images/s and peak GPU memory in the same format as `host bench`.
Run it in the same device session as `host bench --device cuda` so the comparison is a
ratio from one run.

    python tools/bench/torch_clip_bench.py --batch 256 --precision tf32 --mode lora
"""
import argparse
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    ap.add_argument("--mode", choices=["lora", "finetune", "infer"], default="lora")
    a = ap.parse_args()
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    torch.backends.cuda.matmul.allow_tf32 = a.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = a.precision == "tf32"
    cfg = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=32, projection_dim=512, hidden_act="quick_gelu")
    model = CLIPVisionModelWithProjection(cfg).cuda()
    if a.mode == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=128, target_modules=["q_proj", "v_proj"]))
    head = torch.nn.Sequential(torch.nn.BatchNorm1d(512, affine=False), torch.nn.Linear(512, 10)).cuda()
    params = [p for p in list(model.parameters()) + list(head.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    x = torch.randn(a.batch, 3, 224, 224, device="cuda")
    y = torch.randint(0, 10, (a.batch,), device="cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.precision == "bf16")

    def step():
        if a.mode == "infer":
            with torch.no_grad(), autocast:
                head(model(pixel_values=x).image_embeds)
            return
        with autocast:
            loss = torch.nn.functional.cross_entropy(head(model(pixel_values=x).image_embeds), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    torch.cuda.synchronize()
    ips = a.batch * a.steps / (time.perf_counter() - t)
    print(f"pytorch {a.mode} batch {a.batch} precision {a.precision}: {ips:.1f} images/s, "
          f"peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
