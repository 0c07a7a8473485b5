"""Tiny, randomly initialised Qwen2.5-VL and Qwen3-VL checkpoints, built fully offline: the CPU quick
start (``geolocate train --make-tiny-model DIR``, or ``model_name_or_path: tiny`` in a config) and
the tests.

A byte-level BPE tokenizer is trained locally (``tokenizers``) with the Qwen special tokens, the
PIL image processor is used (no torchvision), and text/vision configs are a few thousand parameters.
The result is saved as a normal checkpoint folder, so the real ``from_pretrained`` loading path runs.
"""

from __future__ import annotations

from pathlib import Path

QWEN_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
GRAMMAR_TOKENS = [
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<answer>",
    "</answer>",
    "<tool_response>",
    "</tool_response>",
]

# Qwen2-VL's chat template (content parts; images as vision tokens), as the released checkpoints ship it.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful "
    "assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _corpus() -> list[str]:
    from geolocate.agent.state import Budget
    from geolocate.prompts.render import system_prompt
    from geolocate.tools.registry import ToolSet

    text = system_prompt(ToolSet.from_names().schemas(), Budget())
    return [
        text,
        '{"name": "commit", "arguments": {"level": "country", "value": "NO", "confidence": 0.5, '
        '"evidence": ["e1"]}}',
        '{"lat": 59.91, "lon": 10.75, "radius_km": 25.0, "localizability": 0.4} 0123456789 -.,:;',
    ]


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=QWEN_SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_corpus() * 4, trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHAT_TEMPLATE
    )
    hf.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL[1:]})
    hf.add_tokens(GRAMMAR_TOKENS)
    return hf


def build(out: str | Path, family: str = "qwen2_5_vl", seed: int = 0) -> Path:
    """Write a tiny random ``family`` checkpoint (qwen2_5_vl or qwen3_vl) to ``out`` and return it."""
    import torch
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    out = Path(out)
    tok = build_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    common = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    text = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16384,
        rope_theta=10000.0,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    if family == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        cfg = Qwen2_5_VLConfig(
            text_config={**text, "rope_scaling": {"type": "mrope", "mrope_section": [2, 1, 1]}},
            vision_config=dict(
                depth=2,
                hidden_size=32,
                intermediate_size=64,
                num_heads=4,
                out_hidden_size=32,
                patch_size=14,
                spatial_merge_size=2,
                temporal_patch_size=2,
                window_size=56,
                fullatt_block_indexes=[1],
                in_channels=3,
            ),
            **common,
        )
        model = Qwen2_5_VLForConditionalGeneration(cfg)
        patch = 14
    elif family == "qwen3_vl":
        from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

        cfg = Qwen3VLConfig(
            text_config={
                **text,
                "head_dim": 8,
                "rope_scaling": {
                    "rope_type": "default",
                    "mrope_section": [2, 1, 1],
                    "mrope_interleaved": True,
                },
            },
            vision_config=dict(
                depth=2,
                hidden_size=32,
                intermediate_size=64,
                num_heads=4,
                out_hidden_size=32,
                patch_size=16,
                spatial_merge_size=2,
                temporal_patch_size=2,
                num_position_embeddings=64,
                deepstack_visual_indexes=[0],
                in_channels=3,
            ),
            **common,
        )
        model = Qwen3VLForConditionalGeneration(cfg)
        patch = 16
    else:
        raise ValueError(f"unknown family {family!r}")
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(out)
    tok.save_pretrained(out)
    ip = Qwen2VLImageProcessorPil(
        patch_size=patch,
        merge_size=2,
        temporal_patch_size=2,
        min_pixels=(patch * 2) ** 2 * 4,
        max_pixels=(patch * 2) ** 2 * 64,
    )
    ip.save_pretrained(out)
    return out
