"""Stage finetune@<method>: train full / lora / prompt_tuning with the shared Seq2SeqTrainer function.

With ``training.num_processes`` > 1, or an accelerate config file in ``training.accelerate_config``, the stage
re-launches itself under ``accelerate launch`` (one process per GPU, several CPU processes over gloo, or whatever
the config file says: FSDP, DeepSpeed, several machines). A single process sees only the GPU that ``device`` names.
"""

from __future__ import annotations

from summarizer.config import METHODS, load_params
from summarizer.device import select_pinned_runtime, select_runtime
from summarizer.io import write_json
from summarizer.launch import is_launched, rank, relaunch_if_asked
from summarizer.stage import parser, run_stage
from summarizer.training import TrainRequest, train


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--method", choices=METHODS, required=True)
    p.add_argument("--base-model", required=True, help="the base model")
    p.add_argument("--features", required=True, help="the tokenized train and validation splits")
    p.add_argument("--out", required=True, help="the trained model (full) or adapter (lora, prompt_tuning)")
    p.add_argument("--checkpoints", required=True, help="kept only while training, for resume")
    p.add_argument("--live", required=True, help="dvclive folder: loss curves")
    p.add_argument("--metrics", required=True)
    args = p.parse_args(argv)
    # The device is checked after pinning: counting GPUs starts CUDA, after which CUDA_VISIBLE_DEVICES is ignored.
    # (load_params checks values only, so this order holds.)
    cfg = load_params(args.params)

    tc = cfg.training
    launched = is_launched()
    if relaunch_if_asked(argv, num_processes=tc.num_processes, config_file=tc.accelerate_config, device=cfg.device,
                         key="training.num_processes"):
        return

    # Under accelerate each rank takes the GPU of its LOCAL_RANK (select_runtime); alone, only the chosen GPU.
    select = select_runtime if launched else select_pinned_runtime
    runtime = select(cfg.device, cfg.precision, deterministic=cfg.deterministic)
    request = TrainRequest(method=args.method, lr=cfg.method_lr(args.method), hp=cfg.method(args.method),
                           shared=cfg.training, seed=cfg.seed, attention=cfg.model.attention)
    summary = train(request, base_dir=args.base_model, features_dir=args.features, out_dir=args.out,
                    checkpoint_dir=args.checkpoints, live_dir=args.live, runtime=runtime)
    if rank() == 0:
        write_json(args.metrics, summary)


if __name__ == "__main__":
    run_stage(main)
