"""Training configuration: a ``trl.GRPOConfig`` with the episode, data and reward settings added.

Read from YAML or JSON by ``geolocate train --config FILE`` (``transformers.HfArgumentParser``); every
GRPOConfig field works too (``num_generations`` is the group size, ``beta`` the KL weight,
``loss_type``, ``learning_rate``, ``use_vllm``/``vllm_mode``, ``save_steps`` for resumable
checkpoints...).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig


@dataclass
class GeoGRPOConfig(GRPOConfig):
    model_name_or_path: str = field(
        default="Qwen/Qwen2.5-VL-7B-Instruct", metadata={"help": "checkpoint to train (hub id or folder)"}
    )
    dataset: str = field(
        default="osv5m", metadata={"help": "layout: osv5m, im2gps3k, yfcc4k, mp16-pro or csv"}
    )
    data: str | None = field(default=None, metadata={"help": "osv5m folder (labels.csv + images/)"})
    labels: str | None = field(default=None, metadata={"help": "labels CSV for the other layouts"})
    images: str | None = field(default=None, metadata={"help": "image folder for the other layouts"})
    limit: int | None = field(default=None, metadata={"help": "use only the first N samples"})
    hard_reference: str | None = field(
        default=None,
        metadata={
            "help": "predictions CSV (id, lat, lon) of a reference policy: drop the samples it gets "
            "within hard_threshold_km (Geo-R)"
        },
    )
    hard_threshold_km: float = 25.0
    tools: str = field(
        default="ocr,clues,gazetteer,geocode", metadata={"help": "tool mask of training episodes"}
    )
    max_turns: int = 6
    max_tool_calls: int = 8
    max_turn_tokens: int = 512
    prompt_version: int = field(
        default=2, metadata={"help": "prompt templates (prompts/v<N>); recorded in the checkpoint"}
    )
    max_pixels: int = 1280 * 28 * 28
    reward_weights_by_name: str = field(
        default="geo_r_distance=1.0,geoscore=0.0,chain_of_region=0.5,localizability=0.25,cue_grounding=0.25,format=0.25,tool_use=0.1",
        metadata={"help": "comma list name=weight over the rewards of policy_training.rewards"},
    )
    geo_r_breakpoints: str = field(
        default="750,2500,20000",
        metadata={"help": "Geo-R breakpoints in km (paper: 750,2500,20000; released code: 750,3000,20000)"},
    )
    resume: bool = field(default=False, metadata={"help": "resume from the last checkpoint in output_dir"})
    sft_source: str = field(
        default="heuristic",
        metadata={"help": "SFT warm start (geolocate train --sft): heuristic, server or sessions"},
    )
    sft_max_error_km: float = field(
        default=750.0, metadata={"help": "SFT: keep teacher episodes whose answer is this close to the truth"}
    )
    sft_server: str | None = field(
        default=None, metadata={"help": "SFT teacher endpoint (sft_source server)"}
    )
    sft_server_model: str | None = field(default=None, metadata={"help": "SFT teacher model name"})
    sft_sessions: str | None = field(
        default=None, metadata={"help": "SFT session store (sft_source sessions)"}
    )

    dynamic_sampling: bool = field(
        default=False,
        metadata={
            "help": "DAPO dynamic sampling: groups whose rewards are all equal (zero advantage) are "
            "dropped from the loss, so they do not dilute the informative ones"
        },
    )
    zero_std_warning: float = field(
        default=0.5,
        metadata={"help": "warn when this share of groups or more have zero reward variance (no signal)"},
    )
    peft: dict | None = field(
        default=None,
        metadata={
            "help": "LoRA through peft: {r, lora_alpha, lora_dropout, target_modules, train_vision}; "
            "adapters are saved, and a merged model beside them in <output_dir>/merged"
        },
    )
    geo_eval_steps: int = field(
        default=0, metadata={"help": "every N steps run the project's evals on the held-out split (0: off)"}
    )
    geo_eval_limit: int = field(default=8, metadata={"help": "held-out photos for evals during training"})
    geo_eval_split: float = field(
        default=0.0,
        metadata={
            "help": "share of the dataset held out for evals during training (0: the last geo_eval_limit)"
        },
    )
    sft_learning_rate: float | None = field(
        default=None, metadata={"help": "SFT warm start: learning rate (default: learning_rate)"}
    )
    sft_epochs: float = field(default=1.0, metadata={"help": "SFT warm start: epochs over teacher episodes"})
    sft_max_steps: int = field(default=-1, metadata={"help": "SFT warm start: steps (-1: sft_epochs decide)"})
    sft_warm_start: bool = field(
        default=False,
        metadata={"help": "geolocate train runs SFT first (into <output_dir>/sft), then GRPO from it"},
    )
    sft_batch_size: int | None = field(
        default=None,
        metadata={"help": "SFT warm start: per-device batch (default: per_device_train_batch_size)"},
    )

    def weights(self) -> dict[str, float]:
        out = {}
        for part in self.reward_weights_by_name.split(","):
            if part.strip():
                k, v = part.split("=")
                out[k.strip()] = float(v)
        return out

    def breakpoints(self) -> tuple[float, float, float]:
        b = tuple(float(x) for x in self.geo_r_breakpoints.split(","))
        if len(b) != 3:
            raise ValueError("geo_r_breakpoints needs three values in km")
        return b  # type: ignore[return-value]
