"""SAE training: steerinterp's `train_sae` against SAELens's `SAETrainer` on the same activations and the same config.

Everything is measured in one run and printed as ratios, for two datasets:

- synthetic planted sparse data (d_in 64, 256 unit ground-truth features, 5 active per token, magnitudes in [0.5, 1.5],
  plus small Gaussian noise), and
- every token of organism conversations at layer 2 of the shipped model organism (d_in 128), held out by conversation.

For each, a TopK SAE is trained by both trainers on the same batches in the same order (same d_sae, k, batch size,
number of tokens, learning rate and schedule, AuxK coefficient and k_aux, dead-latent window, input normalisation, seed
where one applies), on the CPU with the same number of torch threads, and we report

- training throughput (tokens/s over the whole training call, wall clock) and ours/SAELens (target >= 1x);
- on held-out tokens: L0, FVU = sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 pooled over tokens, and FVU ours/SAELens at
  equal L0 (target <= 1); the fraction of latents that never fire on the held-out tokens;
- interop: our SAE saved with `save_sae` and read by SAELens's `SAE.load_from_disk`, and SAELens's saved SAE read by our
  `load_sae`: the max abs difference of the codes on held-out tokens, each way (target ~ float32 rounding), on the tokens
  whose active latents agree, and how many tokens' active sets differ (a float32 rounding difference can flip a TopK
  choice when the k-th and (k+1)-th pre-activations nearly tie; we print the largest such margin).

The same comparison is run for BatchTopK SAEs (`--no-batchtopk` skips it): SAELens's BatchTopK trainer is its TopK one
with a batch-level top-k and a single threshold for inference, and both libraries save BatchTopK as JumpReLU.

The settings that cannot be made equal are printed with the results: decoder-norm handling, decoder init, b_dec init, the
BatchTopK inference threshold, and (probed at run time) whether our AuxK puts negative pre-activations through a ReLU.
Run it in a separate environment, so the project's stays free of SAELens's dependencies (transformer-lens, wandb, ...):
    python -m venv /tmp/saevenv && /tmp/saevenv/bin/pip install sae-lens==6.54.12 --constraint <(echo torch==2.13.0)
    /tmp/saevenv/bin/pip install -e . --constraint <(echo torch==2.13.0)
    nice -n 10 /tmp/saevenv/bin/python benchmarks/sae.py --threads 1
"""
import argparse, itertools, json, math, os, random, tempfile, time, warnings
from pathlib import Path
os.environ.setdefault("TQDM_DISABLE", "1")      # SAELens's fit() always opens a progress bar
os.environ.setdefault("WANDB_MODE", "disabled")
import torch

# ---------------------------------------------------------------------------------------------------------------- data
def synthetic_data(n_train, n_test, noise=0.02, seed=0):
    "Planted sparse data: `X = codes @ D + noise`, 256 unit directions in 64 dimensions, exactly 5 active per token."
    from steerinterp.sae_metrics import planted_sparse_data
    X, codes, D = planted_sparse_data(n_train + n_test, d=64, n_features=256, k_active=5, noise=noise, seed=seed)
    return X[:n_train].contiguous(), X[n_train:].contiguous(), D

def organism_data(n_chats, layer=2, test_frac=0.1, seed=0):
    "Every token (BOS dropped) of `n_chats` organism training chats at `layer`; the last `test_frac` of the chats are held out."
    from steerinterp.organism import load_organism, conversation, render_chat
    from steerinterp.activations import capture_tokens
    m = load_organism()
    rng = random.Random(f"bench-sae-{seed}")
    texts = []
    while len(texts) < n_chats:   # 4-8 turns, so a chat fits the organism's 512 positions (6-12 turns often do not)
        t = render_chat(conversation(rng, n_turns=(4, 8))[1])
        if len(m.tokenizer(t, add_special_tokens=False).input_ids) <= m.hf.config.max_position_embeddings: texts.append(t)
    got = list(capture_tokens(m, texts, [layer], drop_bos=True, progress=False))
    acts, text = torch.cat([g.acts[:, 0] for g in got]), torch.cat([g.text for g in got])
    test = text >= int(len(texts) * (1 - test_frac))
    return acts[~test].contiguous(), acts[test].contiguous(), m

# ------------------------------------------------------------------------------------------------------------ training
def dead_tokens(tokens, batch_size):
    "train_sae's default dead-latent window, in tokens (a latent is dead after this many tokens without firing)."
    return max(batch_size, min(10_000_000, (tokens // batch_size) * batch_size // 10))

def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c

def train_ours(X, kind, d_sae, k, tokens, batch_size, lr, seed):
    from steerinterp.sae_training import train_sae
    sae, wall, cpu = timed(lambda: train_sae(X, kind, d_sae, k, tokens=tokens, batch_size=batch_size, lr=lr, seed=seed, progress=False))
    return sae, wall, cpu

def train_saelens(X, kind, d_sae, k, tokens, batch_size, lr, seed):
    "SAELens's SAETrainer with every trainer setting that has a counterpart in train_sae set to train_sae's value."
    from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig, BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer
    from steerinterp.sae_training import TensorSource, shuffled_batches
    src, steps = TensorSource(X), tokens // batch_size
    n_norm = math.ceil(min(len(X), 16_384) / batch_size)
    # the norm estimate reads the same 16,384 tokens train_sae samples for its input scale (and b_dec);
    # training then reads the very batches train_sae reads, in the same order
    data = itertools.chain(itertools.islice(shuffled_batches(src, batch_size, seed + 1), n_norm), shuffled_batches(src, batch_size, seed))
    warm = max(1, int(0.01 * steps))
    def run():
        torch.manual_seed(seed)
        common = dict(d_in=X.shape[1], d_sae=d_sae, aux_loss_coefficient=1 / 32, normalize_activations="expected_average_only_in")
        sae = (TopKTrainingSAE(TopKTrainingSAEConfig(k=k, **common)) if kind == "topk"
               else BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(k=k, **common)))   # an int k, as users write it (the field is typed float)
        cfg = SAETrainerConfig(total_training_samples=steps * batch_size, train_batch_size_samples=batch_size, lr=lr, lr_end=lr,
                               lr_scheduler_name="constant", lr_warm_up_steps=warm if warm > 1 else 0, lr_decay_steps=int(0.2 * steps),
                               adam_beta1=0.9, adam_beta2=0.999, device="cpu",
                               dead_feature_window=math.ceil(dead_tokens(tokens, batch_size) / batch_size) - 1,
                               feature_sampling_window=steps + 1, n_batches_for_norm_estimate=n_norm,
                               logger=LoggingConfig(log_to_wandb=False))
        return SAETrainer(cfg=cfg, sae=sae, data_provider=data).fit()
    sae, wall, cpu = timed(run)
    return sae.eval(), wall, cpu

# ---------------------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(encode, decode, X, batch_size=4096):
    "L0, pooled FVU and the fraction of latents that never fire, on `X`."
    err = l0 = 0.0; fired = None
    for x in X.split(batch_size):
        f = encode(x); r = decode(f)
        err += (x - r).pow(2).sum().item(); l0 += (f != 0).sum().item()
        fired = (f != 0).any(0) if fired is None else fired | (f != 0).any(0)
    return dict(l0=l0 / len(X), fvu=err / (X - X.mean(0)).pow(2).sum().item(), dead=1 - fired.float().mean().item())

def mmcs(W_dec, D):
    "Mean over the planted directions of their best cosine with a decoder row."
    W = W_dec / W_dec.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return (D @ W.T).max(1).values.mean().item()

@torch.no_grad()
def code_diff(ours, other_codes, X):
    "Max abs code difference on tokens whose active latents agree; how many tokens' active sets differ; our margin there."
    f = ours.encode(X)
    diff = (f - other_codes).abs().max(-1).values
    flip = ((f != 0) != (other_codes != 0)).any(-1)
    z = ours.pre_acts(X[flip])
    if ours.kind == "topk": margin = (lambda t: t[:, -2] - t[:, -1])(z.topk(ours.k + 1, -1).values)   # k-th minus (k+1)-th
    else: margin = (z - ours.threshold).abs().min(-1).values                                            # nearest to the threshold
    return diff[~flip].max().item(), int(flip.sum()), margin.max().item() if len(margin) else 0.0

@torch.no_grad()
def interop(ours, theirs, X, tmp):
    "Our SAE through save_sae -> SAELens's SAE.load_from_disk, and SAELens's saved SAE through our load_sae, on `X`."
    from sae_lens import SAE as SLSAE
    from steerinterp.sae import save_sae, load_sae
    save_sae(ours, f"{tmp}/ours")
    a = code_diff(ours, SLSAE.load_from_disk(f"{tmp}/ours").encode(X), X)
    theirs.save_inference_model(f"{tmp}/theirs")
    ref = SLSAE.load_from_disk(f"{tmp}/theirs")
    b = code_diff(load_sae(f"{tmp}/theirs"), ref.encode(X), X)
    note = None
    if theirs.cfg.architecture() == "batchtopk":   # SAELens types BatchTopK's k as a float: does a file with k = 16.0 load too?
        cfg = json.loads(Path(f"{tmp}/theirs/cfg.json").read_text())
        cfg["metadata"]["training_architecture_details"]["k"] = float(cfg["metadata"]["training_architecture_details"]["k"])
        Path(f"{tmp}/theirs/cfg.json").write_text(json.dumps(cfg))
        try: load_sae(f"{tmp}/theirs"); note = "a SAELens BatchTopK file with a float k (e.g. 16.0) loads too"
        except Exception as e: note = f"a SAELens BatchTopK file with a float k fails load_sae: {type(e).__name__}: {str(e)[:70]}..."
    return a, b, ref, note

# ---------------------------------------------------------------------------------------------------------------- main
def our_auxk():
    "Whether train_sae's AuxK uses the dead latents' raw pre-activations (as SAELens) or puts them through a ReLU: a 2-latent probe."
    try:
        from steerinterp.sae import SAE
        from steerinterp.sae_training import _losses
        sae = SAE(2, 2, "topk", 1)
        with torch.no_grad(): sae.W_enc.copy_(torch.eye(2)); sae.W_dec.copy_(torch.eye(2)); sae.b_enc.copy_(torch.tensor([1.0, -1.0]))
        # latent 1 is dead with pre-activation -1: raw, it reconstructs [0, -1] of the residual [-1, 0] (aux 2); through a ReLU, nothing (aux 1)
        aux = _losses(sae, torch.zeros(1, 2), dict(aux_coefficient=1.0, aux_k=1), 1.0, torch.tensor([False, True]))[3]["aux"].item()
        return {2.0: "raw", 1.0: "relu"}.get(round(aux, 4))
    except Exception:
        return None

def differences():
    auxk = our_auxk()
    aux_diff = {"relu": "  - AuxK: ours passes the dead latents' top pre-activations through a ReLU (a negative one adds nothing), SAELens uses them raw\n",
                "raw": "", None: "  - AuxK: could not probe how ours treats negative pre-activations of dead latents (SAELens uses them raw)\n"}[auxk]
    return ("settings that differ (not removable through either API):\n"
            "  - decoder norm: ours keeps W_dec rows at unit norm (gradient projected, rows renormalised each step); SAELens leaves W_dec free\n"
            "    and divides it out (rescale_acts_by_decoder_norm=True, its TopK/BatchTopK default), folding the norms in on save\n"
            "  - decoder init: both tied (W_enc = W_dec^T); ours Gaussian rows at norm 1, SAELens kaiming-uniform rows at norm 0.1 (decoder_init_norm)\n"
            "  - b_dec init: ours the geometric median of the 16,384-token sample; SAELens zeros (it has no other option in v6)\n"
            + aux_diff +
            "  - BatchTopK threshold: ours set after training to keep exactly k codes per token on the 16,384-token sample;\n"
            "    SAELens an EMA (0.99) of each batch's smallest kept activation, starting at 0\n"
            "  - SAELens tracks per-latent firing counts every step (act_freq_scores); ours logs metrics every 10 steps\n"
            "  matched: data and batch order, d_sae, k, batch, tokens, lr with 1% linear warm-up and linear decay to 0 over the last 20%,\n"
            "  Adam(0.9, 0.999), grad-norm clip 1.0, input scale sqrt(d_in)/mean norm on the same 16,384 tokens (SAELens\n"
            "  expected_average_only_in, folded on save), MSE summed over d_in, AuxK coefficient 1/32 with k_aux = d_in/2"
            + (" on raw pre-activations" if auxk == "raw" else "") + ", dead window\n"
            "  max(batch, tokens/10) tokens, torch seed")

def compare(name, Xtr, Xte, kind, d_sae, k, tokens, batch_size, lr, seed, D=None):
    ours, w_o, c_o = train_ours(Xtr, kind, d_sae, k, tokens, batch_size, lr, seed)
    theirs, w_t, c_t = train_saelens(Xtr, kind, d_sae, k, tokens, batch_size, lr, seed)
    n = (tokens // batch_size) * batch_size
    with tempfile.TemporaryDirectory() as tmp:
        a, b, ref, note = interop(ours, theirs, Xte, tmp)
    eo = evaluate(ours.encode, lambda f: ours.decode(f), Xte)
    et = evaluate(ref.encode, ref.decode, Xte)
    r = dict(name=name, kind=kind, n=n, tps_o=n / w_o, tps_t=n / w_t, cpu_ratio=c_t / c_o, loop_o=ours.meta["training"]["seconds"],
             wall_o=w_o, wall_t=w_t, eo=eo, et=et, a=a, b=b, note=note, scale=ours.encode(Xte).abs().max().item(), n_test=len(Xte))
    if D is not None: r.update(mmcs_o=mmcs(ours.W_dec.detach(), D), mmcs_t=mmcs(ref.W_dec.detach(), D))
    return r

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--synthetic-tokens", type=int, default=200_000, help="training tokens of planted data (+10%% held out)")
    ap.add_argument("--chats", type=int, default=600, help="organism chats (10%% held out)")
    ap.add_argument("--train-tokens", type=int, default=500_000, help="tokens each SAE trains on (a few epochs)")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--no-batchtopk", dest="batchtopk", action="store_false", help="compare TopK training only")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore")
    import sae_lens, transformers  # noqa: F401  (imported before any timing)
    from steerinterp.sae_training import default_lr
    t_start = time.perf_counter()
    syn_tr, syn_te, D = synthetic_data(a.synthetic_tokens, a.synthetic_tokens // 10, seed=a.seed)
    org_tr, org_te, m = organism_data(a.chats, seed=a.seed)
    print(f"torch {torch.__version__}, sae-lens {sae_lens.__version__}, {torch.get_num_threads()} torch thread(s); "
          f"batch {a.batch_size}, {a.train_tokens:,} training tokens per SAE\n"
          f"synthetic: {len(syn_tr):,} train / {len(syn_te):,} held-out tokens, d_in 64, 256 planted features, 5 active\n"
          f"organism layer 2: {len(org_tr):,} train / {len(org_te):,} held-out tokens of {a.chats} chats, d_in {m.d_model}\n")
    runs = [("synthetic", syn_tr, syn_te, 512, 5, D), ("organism L2", org_tr, org_te, 1024, 16, None)]
    kinds = ["topk"] + (["batchtopk"] if a.batchtopk else [])
    res = [compare(name, tr, te, kind, d_sae, k, a.train_tokens, a.batch_size, default_lr(d_sae), a.seed, D=D_)
           for kind in kinds for name, tr, te, d_sae, k, D_ in runs]
    hdr = f"{'data':<12} {'kind':<9} {'trainer':<9} {'tokens/s':>9} {'L0':>6} {'FVU':>7} {'dead':>6} {'MMCS':>6}"
    print(hdr); print("-" * len(hdr))
    for r in res:
        for who, tps, e, mm in (("ours", r["tps_o"], r["eo"], r.get("mmcs_o")), ("SAELens", r["tps_t"], r["et"], r.get("mmcs_t"))):
            print(f"{r['name']:<12} {r['kind']:<9} {who:<9} {tps:9,.0f} {e['l0']:6.2f} {e['fvu']:7.4f} {e['dead']:6.1%} "
                  + (f"{mm:6.3f}" if mm is not None else f"{'':>6}"))
    print()
    for r in res:
        tag = f"{r['name']}, {r['kind']}"
        print(f"[{tag}] throughput ours/SAELens: {r['tps_o'] / r['tps_t']:.2f}x wall ({r['cpu_ratio']:.2f}x by CPU time; "
              f"ours {r['wall_o']:.1f} s of which loop {r['loop_o']:.1f} s, SAELens {r['wall_t']:.1f} s)   target >= 1x")
        print(f"[{tag}] FVU ours/SAELens: {r['eo']['fvu'] / r['et']['fvu']:.3f} at L0 {r['eo']['l0']:.2f} vs {r['et']['l0']:.2f}"
              f"   target <= 1" + ("" if abs(r['eo']['l0'] - r['et']['l0']) <= 0.05 * r['et']['l0'] else "  (L0 NOT equal)"))
        print(f"[{tag}] dead latents on held-out: ours {r['eo']['dead']:.1%}, SAELens {r['et']['dead']:.1%}")
        for way, (d, n, gap) in (("save_sae -> SAELens", r["a"]), ("SAELens -> load_sae", r["b"])):
            print(f"[{tag}] interop {way}: max |code diff| {d:.1e} (codes up to {r['scale']:.1f}); active set differs on {n} of "
                  f"{r['n_test']:,} tokens" + (f" (largest pre-activation margin at the k-th place or threshold there: {gap:.0e})" if n else ""))
        if r["note"]: print(f"[{tag}] note: {r['note']}")
    print("\n" + differences())
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")

if __name__ == "__main__":
    main()
