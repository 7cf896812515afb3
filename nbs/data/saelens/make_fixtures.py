"""Write tiny reference SAE folders with real SAELens (run with /tmp/saevenv/bin/python).

Each /work/scratch/saelens_fixtures/<name>/ holds exactly what SAELens's own save
function writes (cfg.json + sae_weights.safetensors), plus reference.safetensors
with x [5, 8], feature_acts = sae.encode(x), sae_out = sae.decode(feature_acts)
computed by SAELens on the SAE *re-loaded from the folder* with SAE.load_from_disk
(checked equal to the in-memory SAE before saving).
"""

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import sae_lens
from sae_lens import (
    SAE,
    BatchTopKTrainingSAE,
    BatchTopKTrainingSAEConfig,
    JumpReLUSAE,
    JumpReLUSAEConfig,
    StandardSAE,
    StandardSAEConfig,
    StandardTrainingSAE,
    StandardTrainingSAEConfig,
    TopKSAE,
    TopKSAEConfig,
    TopKTrainingSAE,
    TopKTrainingSAEConfig,
)
from sae_lens.saes.sae import SAEMetadata

OUT = Path(__file__).resolve().parent
D_IN, D_SAE, K = 8, 16, 4


def meta():
    return SAEMetadata(model_name="tiny-test-model", hook_name="blocks.0.hook_resid_post")


@torch.no_grad()
def fill(sae, seed=0):
    """Seeded, non-zero weights. Threshold (if any) positive, about 0.1."""
    g = torch.Generator().manual_seed(seed)
    sae.W_enc.copy_(torch.randn(D_IN, D_SAE, generator=g) * 0.5)
    sae.W_dec.copy_(torch.randn(D_SAE, D_IN, generator=g) * 0.5)
    sae.b_enc.copy_(torch.randn(D_SAE, generator=g) * 0.1)
    sae.b_dec.copy_(torch.randn(D_IN, generator=g) * 0.1)
    if hasattr(sae, "threshold") and isinstance(sae.threshold, torch.nn.Parameter):
        sae.threshold.copy_(0.05 + 0.1 * torch.rand(D_SAE, generator=g))


def make_x():
    g = torch.Generator().manual_seed(1234)
    return torch.randn(5, D_IN, generator=g) * 2.0


def finish(name, sae_inmem_encode, sae_inmem_decode, save_fn, extra_check=None):
    folder = OUT / name
    if folder.exists():
        shutil.rmtree(folder)
    save_fn(folder)
    x = make_x()
    with torch.no_grad():
        loaded = SAE.load_from_disk(folder, device="cpu")
        fa = loaded.encode(x)
        out = loaded.decode(fa)
        fwd = loaded(x)
    assert torch.allclose(out, fwd, atol=0, rtol=0), name
    if sae_inmem_encode is not None:
        with torch.no_grad():
            fa_mem = sae_inmem_encode(x)
            out_mem = sae_inmem_decode(fa_mem)
        assert torch.allclose(fa, fa_mem, atol=1e-5), (name, (fa - fa_mem).abs().max())
        assert torch.allclose(out, out_mem, atol=1e-5), (name, (out - out_mem).abs().max())
    n_active = (fa != 0).sum(-1).tolist()
    assert all(n > 0 for n in n_active), (name, n_active)
    save_file({"x": x.contiguous(), "feature_acts": fa.contiguous(), "sae_out": out.contiguous()},
              folder / "reference.safetensors")
    if extra_check:
        extra_check(folder, x, loaded)
    w = load_file(folder / "sae_weights.safetensors")
    cfg = json.loads((folder / "cfg.json").read_text())
    print(f"== {name}: loaded as {type(loaded).__name__}; active/row={n_active}")
    print("   files:", sorted(p.name for p in folder.iterdir()))
    print("   weights:", {k: (tuple(v.shape), str(v.dtype)) for k, v in w.items()})
    print("   cfg:", json.dumps(cfg))


def main():
    torch.manual_seed(0)
    print("sae_lens", sae_lens.__version__, "torch", torch.__version__)

    # 1) standard (ReLU), inference class, SAE.save_model
    s = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, metadata=meta()))
    fill(s, 0)
    finish("standard", s.encode, s.decode, s.save_model)

    # 2) topk k=4, inference class, SAE.save_model (rescale_acts_by_decoder_norm=False default)
    t = TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K, metadata=meta()))
    fill(t, 1)
    finish("topk", t.encode, t.decode, t.save_model)

    # 3) jumprelu, inference class, SAE.save_model
    j = JumpReLUSAE(JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE, metadata=meta()))
    fill(j, 2)
    finish("jumprelu", j.encode, j.decode, j.save_model)

    # 4) batchtopk: only a *training* class exists; save_inference_model writes a
    #    jumprelu SAE (threshold = topk_threshold buffer broadcast to [d_sae]) and,
    #    since rescale_acts_by_decoder_norm=True by default, folds W_dec norms.
    b = BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K, metadata=meta()))
    fill(b, 3)
    b.topk_threshold = torch.tensor(0.1, dtype=torch.double)

    def bt_extra(folder, x, loaded):
        # training-time (batch-level) activations, for information only
        with torch.no_grad():
            fa_train = b.encode(x)
        save_file({"x": x.contiguous(), "feature_acts_batchtopk_train": fa_train.contiguous()},
                  folder / "training_reference.safetensors")
        print("   batchtopk train-mode active/row:", (fa_train != 0).sum(-1).tolist(),
              "total", int((fa_train != 0).sum()), "(= k * batch =", K * x.shape[0], ")")

    finish("batchtopk", None, None, b.save_inference_model, bt_extra)

    # 5) topk saved from the *training* class (what the training runner writes):
    #    rescale_acts_by_decoder_norm=True -> W_dec rows normalised on save.
    tt = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K, metadata=meta()))
    fill(tt, 4)
    finish("topk_from_training", tt.encode, tt.decode, tt.save_inference_model)

    # 6) standard saved from the training class (training metadata in cfg.json)
    st = StandardTrainingSAE(StandardTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, metadata=meta()))
    fill(st, 5)
    finish("standard_from_training", st.encode, st.decode, st.save_inference_model)


if __name__ == "__main__":
    main()
