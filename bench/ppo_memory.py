"""Peak memory of one PPO update: ours (one base model + LoRA adapters) vs the seed's design (four full models).

    .venv/bin/python bench/ppo_memory.py [--model embedded] [--prompts 8] [--max-new-tokens 32] [--threads 1]

Each design runs in its own subprocess, so each peak is that process's alone: peak RSS
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`) on CPU, `torch.cuda.max_memory_allocated` on CUDA.
One update = one rollout batch (sampling through `Generator`, policy/value/reference forward passes, reward
scores, GAE) + one PPO epoch of minibatch gradient steps with AdamW, i.e. exactly `collect_rollouts` + `ppo_update`.

* ours-shared   - `build_ppo_model` with the default `value_model="shared"`: base + LoRA "policy" + a value head on
                  the policy trunk; reference = adapters off; the reward model's adapter + score head attached to
                  the same base (`RewardModel.attach`).
* ours-adapter  - the same with the value head on its own LoRA adapter "value" (`value_model="adapter"`).
* seed          - the seed's design: a full trainable policy, a full trainable value model (trunk + head),
                  a full reward model (`RewardModel.load`, its own base) and `copy.deepcopy(policy)` as reference.

All designs use the training dtype (fp32 on CPU) and the same prompts, seeds and PPO settings. The reward
adapter is random (`reward_scoring.random_reward_adapter`): memory does not depend on what it learned.
Prints each peak, the peak above the bare `import torch, transformers` process, and the ratio ours / seed
(target <= 0.5x).
"""
import argparse, copy, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402


def peak_mb(device: str) -> float:
    import torch
    if device == "cuda": return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args):
    import torch, torch.nn as nn
    if args.threads: torch.set_num_threads(args.threads)
    import transformers  # noqa: F401  (part of the baseline)
    from cai_workbench.core.config import set_seed
    from cai_workbench.core.environment import detect_device
    dev = detect_device(args.device)
    if dev.kind == "cuda": torch.cuda.reset_peak_memory_stats()
    base_mb = peak_mb(dev.kind)
    from cai_workbench.engine.generator import Generator
    from cai_workbench.engine.models import load_model
    from cai_workbench.rl.ppo import PPOConfig, ValueHead, build_ppo_model, collect_rollouts, ppo_update
    from cai_workbench.feedback.reward_scoring import RewardModel
    from cai_workbench.inputs.prompts import load_prompts
    set_seed(0)
    prompts = load_prompts("red-team", limit=args.prompts).texts
    cfg = PPOConfig(batch_size=args.prompts, minibatch_size=max(1, args.prompts // 2), ppo_epochs=1,
                    generation={"max_new_tokens": args.max_new_tokens}, value_model=args.mode.split("-")[1] if args.mode.startswith("ours") else "adapter")
    t0 = time.time()
    if args.mode.startswith("ours"):
        base, tok = load_model(args.model, purpose="train", device=args.device)
        model = build_ppo_model(base, cfg)
        reward_fn = RewardModel.attach(model.peft, args.reward_adapter, tokenizer=tok, adapter_name="reward").score
        gen_model = model.peft
    else:
        model, tok = SeedModels.build(args.model, args.device, cfg)
        reward_fn = RewardModel.load(args.reward_adapter, device=args.device, dtype=str(dev.dtype("train")).split(".")[-1]).score
        gen_model = model.policy
    setup_s = time.time() - t0
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=cfg.learning_rate)
    gen = Generator(gen_model, tok, batch_size=args.prompts, progress=False)
    t0 = time.time()
    ro = collect_rollouts(model, gen, prompts, reward_fn, cfg, cfg.init_kl_coef, seed=0)
    stats = ppo_update(model, opt, ro, cfg, torch.Generator().manual_seed(0))
    update_s = time.time() - t0
    n_train = sum(p.numel() for p in model.trainable_parameters())
    print(json.dumps({"mode": args.mode, "device": dev.kind, "peak_mb": peak_mb(dev.kind), "baseline_mb": base_mb,
                      "setup_s": setup_s, "update_s": update_s, "trainable_params": n_train,
                      "response_tokens": int(ro.mask.sum()), "policy_loss": stats["policy_loss"]}))


class SeedModels:
    "The seed's design behind the interface `collect_rollouts`/`ppo_update` use: four full models."
    @classmethod
    def build(cls, name, device, cfg):
        from cai_workbench.engine.models import load_model
        policy, tok = load_model(name, purpose="train", device=device)
        value_lm, _ = load_model(name, purpose="train", device=device)
        reference = copy.deepcopy(policy).eval().requires_grad_(False)
        return cls._make(policy, value_lm, reference, cfg), tok

    @classmethod
    def _make(cls, policy, value_lm, reference, cfg):
        import torch, torch.nn as nn
        from cai_workbench.engine.scoring import token_logprobs
        from cai_workbench.rl.ppo import ValueHead

        class _Seed(nn.Module):
            def __init__(self):
                super().__init__()
                self.policy, self.value_lm, self.reference = policy.eval(), value_lm.eval(), reference   # no dropout, as ours
                self.value_head = ValueHead(policy.config.hidden_size).to(next(policy.parameters()).device)
            def use(self, name): pass
            def trainable_parameters(self):
                return list(self.policy.parameters()) + list(self.value_lm.get_decoder().parameters()) + list(self.value_head.parameters())
            @staticmethod
            def _hidden(lm, ids, attn):
                pos = (attn.cumsum(1) - 1).clamp(min=0)
                return lm.get_decoder()(input_ids=ids, attention_mask=attn, position_ids=pos).last_hidden_state
            def _lp(self, lm, h, ids, Q):
                logits = lm.get_output_embeddings()(h[:, Q - 1:-1]).float() / cfg.generation.temperature
                return token_logprobs(logits, ids[:, Q:]), logits
            def forward(self, ids, attn, Q, with_entropy=False):
                lp, logits = self._lp(self.policy, self._hidden(self.policy, ids, attn), ids, Q)
                ent = None
                if with_entropy:
                    p = logits.softmax(-1); ent = torch.logsumexp(logits, -1) - (p * logits).sum(-1)
                values = self.value_head(self._hidden(self.value_lm, ids, attn)[:, Q - 1:-1])
                return lp, values, ent
            @torch.no_grad()
            def reference_logprobs(self, ids, attn, Q):
                return self._lp(self.reference, self._hidden(self.reference, ids, attn), ids, Q)[0]
        return _Seed()


def run_child(mode, args, reward_adapter):
    cmd = [sys.executable, __file__, "--child", mode, "--model", args.model, "--prompts", str(args.prompts),
           "--max-new-tokens", str(args.max_new_tokens), "--reward-adapter", str(reward_adapter),
           "--threads", str(args.threads)]
    if args.device: cmd += ["--device", args.device]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    line = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 or not line:
        sys.exit(f"{mode} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(line[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--prompts", type=int, default=8, help="rollouts in the update (batch_size)")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--device", default=None)
    ap.add_argument("--modes", default="ours-shared,ours-adapter,seed")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per child (0: torch's default); memory does not depend on it")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--reward-adapter", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.mode = args.child
    if args.child: return child(args)
    with tempfile.TemporaryDirectory() as tmp:
        # the reward adapter is made in a subprocess too, so this process stays small
        subprocess.run([sys.executable, "-c", "import sys; from cai_workbench.feedback.reward_scoring import random_reward_adapter as r; "
                        "r(sys.argv[1], base=sys.argv[2])", f"{tmp}/reward", args.model], check=True, capture_output=True)
        res = {m: run_child(m, args, f"{tmp}/reward") for m in args.modes.split(",")}
    dev = next(iter(res.values()))["device"]
    what = "peak RSS" if dev == "cpu" else "CUDA max_memory_allocated"
    print(f"\nPPO memory, one update on {args.model!r} ({dev}; {args.prompts} rollouts x <= {args.max_new_tokens} new tokens; {what})\n")
    print(f"{'design':<13} {'peak MiB':>9} {'above import':>13} {'trainable params':>17} {'update s':>9}")
    for m, r in res.items():
        print(f"{m:<13} {r['peak_mb']:>9.0f} {r['peak_mb'] - r['baseline_mb']:>13.0f} {r['trainable_params']:>17,} {r['update_s']:>9.1f}")
    if "seed" in res:
        s = res["seed"]
        for m in (m for m in res if m != "seed"):
            o = res[m]
            print(f"\n{m} / seed: {o['peak_mb'] / s['peak_mb']:.2f}x peak"
                  f" ({(o['peak_mb'] - o['baseline_mb']) / (s['peak_mb'] - s['baseline_mb']):.2f}x above the bare import)"
                  f"  target <= 0.5x: {'met' if o['peak_mb'] / s['peak_mb'] <= 0.5 else 'NOT met'}")
    write_results("ppo_memory", [{"design": m, "peak MiB": round(r["peak_mb"]), "above import MiB": round(r["peak_mb"] - r["baseline_mb"]),
                                  "trainable params": r["trainable_params"], "update s": round(r["update_s"], 1)} for m, r in res.items()],
                  summary={f"{m} / seed peak": round(res[m]["peak_mb"] / res["seed"]["peak_mb"], 2) for m in res if "seed" in res and m != "seed"}
                  | {"device": dev, "rollouts": args.prompts, "max_new_tokens": args.max_new_tokens, "target": "<= 0.5x"})
    return res


if __name__ == "__main__":
    main()
