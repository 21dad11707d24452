"""trl 0.11.4 under transformers 5: its optional-package flags, corrected before trl is first imported.

trl 0.11.4 (the last trl with PPO for encoder-decoder models, pinned) computes ``is_diffusers_available()`` and its
siblings at import from transformers' private ``_is_package_available`` (``trl/import_utils.py`` ~21-34).
transformers 5 changed that function to return a tuple (``transformers/utils/import_utils.py`` ~76), and
``(False, "N/A")`` is truthy: trl believed diffusers, unsloth, liger-kernel, rich and llm-blender installed when none
was, and acted on it at import (``trl/__init__.py`` ~115 registers its diffusers classes; ``base_environment.py``
~26 imports rich). Importing this module before trl makes trl read the truth: during trl's import only,
``_is_package_available`` answers with the plain boolean it had in transformers 4. Import it before ``trl``.
"""

from __future__ import annotations

import sys

import transformers.utils.import_utils as transformers_imports

# trl's flags: (its private variable, the package it looks for)
TRL_FLAGS = {"_diffusers_available": "diffusers", "_unsloth_available": "unsloth", "_rich_available": "rich",
             "_liger_kernel_available": "liger_kernel", "_llmblender_available": "llm_blender"}


def _as_bool(original):
    def is_package_available(pkg_name: str, return_version: bool = False):
        found = original(pkg_name, return_version)
        exists = found[0] if isinstance(found, tuple) else found
        return found if return_version else bool(exists)

    return is_package_available


def _import_trl_with_true_flags() -> None:
    if "trl" in sys.modules:  # imported before us: correct the flags it computed (its import already acted on them)
        import trl.import_utils as flags

        for name, package in TRL_FLAGS.items():
            setattr(flags, name, bool(transformers_imports._is_package_available(package)[0]))
        return
    original = transformers_imports._is_package_available
    transformers_imports._is_package_available = _as_bool(original)
    try:
        import trl  # noqa: F401  (trl.import_utils binds the function above and computes its flags now)
    finally:
        transformers_imports._is_package_available = original


_import_trl_with_true_flags()
