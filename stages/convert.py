"""Stage convert: one model variant converted for CTranslate2 (generation.backend ctranslate2), once.

A LoRA adapter is merged into its base in fp32 first; prompt tuning cannot be converted, and its folder says so
(conversion.json), so that evaluate generates it with transformers. Weights are kept in float32: the compute type
(generation.compute_type) is applied when the model is loaded, so changing it converts nothing again.
"""

from __future__ import annotations

from summarizer.generation import CONVERSION_INFO, CTRANSLATE2_ABSENT, ctranslate2_installed
from summarizer.io import atomic_dir, write_json
from summarizer.stage import parser, run_stage


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--model", required=True, help="a saved model, or a PEFT adapter over --base-model")
    p.add_argument("--base-model", required=True, help="the base model (and the tokenizer of every variant)")
    p.add_argument("--out", required=True, help="the converted model")
    p.add_argument("--metrics", required=True, help="what was converted (JSON)")
    args = p.parse_args(argv)
    if not ctranslate2_installed():  # e.g. the offline GPU bundle: evaluate then generates with transformers
        info = {"backend": "transformers", "reason": CTRANSLATE2_ABSENT}
        with atomic_dir(args.out) as partial:
            write_json(partial / CONVERSION_INFO, info)
        write_json(args.metrics, info)
        return
    from summarizer.ct2 import convert_variant  # here: it imports ctranslate2

    base = None if args.model == args.base_model else args.base_model
    write_json(args.metrics, convert_variant(args.model, base, args.out))


if __name__ == "__main__":
    run_stage(main)
