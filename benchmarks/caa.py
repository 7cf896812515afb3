"""CAA extraction and sweeps: steerinterp against the minimal computation and the tools users would pick otherwise.

Everything is measured in one run, on the same model and the same pairs, and printed as ratios:

- extraction throughput vs a bare batched forward truncated at the deepest layer (target >= 0.9x),
  vs steering-vectors 0.12 `train_steering_vector` with its defaults, and vs a CAA-style one-example loop (>= 5x each);
- peak memory of extraction vs the bare forward (<= 1.5x), each in a fresh process;
- a 5-multiplier x all-layer sweep vs the naive loop of one full forward per layer and multiplier (<= 0.5x).

steering-vectors needs transformers < 5, so run this in an environment with transformers 4.x:
    pip install torch==2.13.0 'transformers==4.57.6' steering-vectors==0.12.2 && pip install -e .
    python benchmarks/caa.py --model llama-mid
"""
import argparse, json, os, resource, subprocess, sys, time
import torch

def build(name):
    from steerinterp.organism import load_organism
    org = load_organism()
    if name == "organism": return org
    from transformers import LlamaConfig, LlamaForCausalLM
    from steerinterp.models import Model
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(org.tokenizer), hidden_size=512, intermediate_size=1536, num_hidden_layers=8,
                      num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=1024, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return Model.from_hf(LlamaForCausalLM(cfg).eval(), org.tokenizer, name="llama-mid")

def data(n, split="generate"):
    from steerinterp.organism import organism_dataset
    return organism_dataset("sycophancy", split)[:n]

def best_of(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return min(times)

class _Stop(Exception): pass

def bare_extraction(m, texts, batch_size):
    "The minimum: tokenise, one batched forward per batch stopped after the last layer, read one position per row."
    from steerinterp.prompts import encode
    deepest = m.n_layers - 1
    for i in range(0, len(texts), batch_size):
        enc = encode(m.tokenizer, texts[i:i + batch_size])
        out = []
        hs = [m.layer(l).register_forward_hook(lambda mod, a, o: out.append((o[0] if isinstance(o, tuple) else o)[:, -2].float())) for l in range(m.n_layers)]
        def stop(mod, a, o): raise _Stop
        hs.append(m.layer(deepest).register_forward_hook(stop))
        try:
            with torch.no_grad(): m.hf(**enc.inputs(), position_ids=(enc.attention_mask.cumsum(-1) - 1).clamp(min=0))
        except _Stop: pass
        finally: [h.remove() for h in hs]

def ours_extraction(m, pairs, batch_size):
    from steerinterp.vectors import extract_caa
    extract_caa(m, pairs, batch_size=batch_size, progress=False)

def caa_loop(m, texts):
    "CAA's generate_vectors.py pattern: one example at a time, the full model, hooks on every block."
    for t in texts:
        ids = m.tokenizer(t, return_tensors="pt").input_ids
        out = []
        hs = [m.layer(l).register_forward_hook(lambda mod, a, o: out.append((o[0] if isinstance(o, tuple) else o)[0, -2].detach().cpu())) for l in range(m.n_layers)]
        try:
            with torch.no_grad(): m.hf(ids)
        finally: [h.remove() for h in hs]

def steering_vectors_default(m, pos, neg):
    from steering_vectors import train_steering_vector
    train_steering_vector(m.hf, m.tokenizer, list(zip(pos, neg)), read_token_index=-2)  # its defaults otherwise (batch_size=1)

def naive_sweep(m, pairs, vector, mults, batch_size):
    from steerinterp.evals import ab_prompts, letter_ids
    from steerinterp.steering import steer
    from steerinterp.prompts import encode
    texts, letters = ab_prompts(m, pairs)
    ab = letter_ids(m.tokenizer, texts[0])
    for l in vector.layers:
        for x in mults:
            with steer(m, vector, x, layers=l):
                for i in range(0, len(texts), batch_size):
                    enc = encode(m.tokenizer, texts[i:i + batch_size])
                    with torch.no_grad():
                        m.hf(**enc.inputs(), position_ids=(enc.attention_mask.cumsum(-1) - 1).clamp(min=0)).logits[:, -1, ab].softmax(-1)

def rss_mb():
    with open("/proc/self/statm") as f: return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

def memory_child(which, model, n, batch_size):
    "Run one extraction path in this (fresh) process; print peak RSS above the RSS after loading model and data."
    m = build(model); ps = data(n)
    from steerinterp.activations import pair_texts
    pos, neg = pair_texts(m, ps)
    base = rss_mb()
    if which == "ours": ours_extraction(m, ps, batch_size)
    else: bare_extraction(m, pos + neg, batch_size)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(which=which, base_mb=base, peak_above_mb=max(peak - base, 0.0))))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="llama-mid", choices=["organism", "llama-mid"])
    ap.add_argument("--pairs", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--memory-child", choices=["ours", "bare"])
    a = ap.parse_args()
    if a.memory_child: return memory_child(a.memory_child, a.model, a.pairs, a.batch_size)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    m = build(a.model); ps = data(a.pairs)
    from steerinterp.activations import pair_texts
    pos, neg = pair_texts(m, ps)
    texts = pos + neg
    print(f"model {m.name}: {m.n_layers} layers, d_model {m.d_model}, {sum(p.numel() for p in m.hf.parameters())/1e6:.1f} M params; "
          f"{len(ps)} pairs, all layers, batch {a.batch_size}; torch threads {torch.get_num_threads()}")
    t_bare = best_of(lambda: bare_extraction(m, texts, a.batch_size), a.repeats)
    t_ours = best_of(lambda: ours_extraction(m, ps, a.batch_size), a.repeats)
    t_caa = best_of(lambda: caa_loop(m, texts), 1)
    try:
        import steering_vectors  # noqa: F401
        t_sv = best_of(lambda: steering_vectors_default(m, pos, neg), 1)
    except ImportError:
        t_sv = None
    rows = [("extraction: bare batched forward (s)", t_bare, None), ("extraction: steerinterp (s)", t_ours, None),
            ("  throughput vs bare forward", t_bare / t_ours, ">= 0.9x"),
            ("  vs CAA one-example loop", t_caa / t_ours, ">= 5x")]
    if t_sv is not None: rows.append(("  vs steering-vectors 0.12 defaults", t_sv / t_ours, ">= 5x"))
    else: rows.append(("  vs steering-vectors 0.12 defaults", float("nan"), "not installed"))
    mem = {}
    for which in ("ours", "bare"):
        out = subprocess.run([sys.executable, __file__, "--memory-child", which, "--model", a.model, "--pairs", str(a.pairs),
                              "--batch-size", str(a.batch_size)], capture_output=True, text=True, check=True)
        mem[which] = json.loads(out.stdout.strip().splitlines()[-1])["peak_above_mb"]
    rows += [("peak memory above model: steerinterp (MB)", mem["ours"], None), ("peak memory above model: bare (MB)", mem["bare"], None),
             ("  memory vs bare forward", mem["ours"] / max(mem["bare"], 1e-9), "<= 1.5x")]
    from steerinterp.vectors import extract_caa
    from steerinterp.evals import sweep
    test = data(a.pairs, "test_ab")
    v = extract_caa(m, ps, batch_size=a.batch_size, progress=False)
    mults = (-2, -1, 0, 1, 2)
    t_sweep = best_of(lambda: sweep(m, test, v, multipliers=mults, batch_size=a.batch_size, progress=False), 1)
    t_naive = best_of(lambda: naive_sweep(m, test, v, mults, a.batch_size), 1)
    rows += [(f"sweep {len(mults)} multipliers x {m.n_layers} layers: naive loop (s)", t_naive, None),
             ("sweep: steerinterp (s)", t_sweep, None), ("  time vs naive loop", t_sweep / t_naive, "<= 0.5x")]
    w = max(len(r[0]) for r in rows)
    for name, val, target in rows:
        print(f"{name:<{w}}  {val:8.3f}" + (f"   target {target}" if target else ""))

if __name__ == "__main__":
    main()
