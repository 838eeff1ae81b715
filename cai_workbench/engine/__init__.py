"Models and the one generation, tokenisation and log-prob path: loading with LoRA, the embedded model, engines, KV cache and CPU kernels."
