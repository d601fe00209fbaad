"""A tiny FLUX.1 pipeline with random weights, built from configs with no hub access.

It has the real FLUX layout (CLIP and T5 text encoders and tokenizers, a FluxTransformer2DModel, an
AutoencoderKL, the flow-matching scheduler) and is saved with `save_pretrained`, so
`LocalFluxProvider` loads it exactly as it loads the operator's 34 GB folder (about 600 KB here).
The VAE keeps FLUX's 8× downsampling (four blocks) so that output sizes follow the real rule
(multiples of 16), and has no mid-block attention, which would cost gigabytes at 1024×1024 on a CPU.
The tokenizers are written as files first (vocab.json and merges.txt, tokenizer.json) and loaded
from them: no hub download anywhere.

Call only after torch and diffusers imported: the imports are inside the function for that reason.
"""

import json
from pathlib import Path

# CLIP's byte-level BPE alphabet (openai/CLIP `bytes_to_unicode`): every byte maps to one printable
# character, so a vocabulary of these 256 characters tokenizes any text without merges.


def _byte_alphabet() -> list[str]:
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def _write_clip_tokenizer(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>"]
    for char in _byte_alphabet():
        tokens += [char, char + "</w>"]
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")


def _write_t5_tokenizer(folder: Path) -> None:
    """A SentencePiece-style unigram vocabulary of single characters, saved as `tokenizer.json`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(chr(c), -5.0) for c in range(ord("!"), ord("~") + 1)]
    pieces += [("▁" + chr(c), -4.0) for c in range(ord("!"), ord("~") + 1)]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "T5TokenizerFast",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "pad_token": "<pad>",
                "extra_ids": 0,
                "model_max_length": 512,
            }
        )
    )


def save_tiny_flux(folder: Path) -> Path:
    """Builds the tiny pipeline and saves it to `folder` (with `model_index.json`), returning `folder`."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        T5Config,
        T5EncoderModel,
        T5TokenizerFast,
    )

    torch.manual_seed(0)
    sources = folder.parent / f"{folder.name}-sources"
    _write_clip_tokenizer(sources / "tokenizer")
    _write_t5_tokenizer(sources / "tokenizer_2")
    tokenizer = CLIPTokenizer.from_pretrained(sources / "tokenizer", model_max_length=77)
    tokenizer_2 = T5TokenizerFast.from_pretrained(sources / "tokenizer_2")

    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            projection_dim=32,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    text_encoder_2 = T5EncoderModel(
        T5Config(vocab_size=len(tokenizer_2), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4)
    )
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4 * 4,  # 4 latent channels in 2×2 patches
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,  # T5 d_model
        pooled_projection_dim=32,  # CLIP hidden size
        axes_dims_rope=[4, 4, 8],
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(4, 4, 4, 4),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=2,
        sample_size=64,
        use_quant_conv=False,
        use_post_quant_conv=False,
        mid_block_add_attention=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    pipeline = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )
    pipeline.save_pretrained(folder)
    return folder
