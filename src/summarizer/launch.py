"""Running a stage in several processes: the stage relaunches itself under ``accelerate launch``.

accelerate (torch.distributed underneath) starts the processes, one per GPU or several CPU processes over gloo;
with ``training.accelerate_config`` its config file decides the rest (FSDP, DeepSpeed, several machines), so none
of that needs code here.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence

from summarizer.device import check_num_processes, runtime_facts

log = logging.getLogger(__name__)

# Set in the relaunched processes, so that they run the stage instead of launching again.
LAUNCHED = "ACCELERATE_LAUNCHED"


def is_launched() -> bool:
    """True inside a process started by ``accelerate launch`` (or torchrun)."""
    return LAUNCHED in os.environ or "LOCAL_RANK" in os.environ


def launch_command(script_argv: Sequence[str], *, num_processes: int, config_file: str | None) -> list[str]:
    """The ``accelerate launch`` command that runs ``script_argv`` (the script and its arguments) again.

    With a config file, the file says how many processes, machines and which sharding: only ``--config_file`` is
    passed, so nothing here overrides it. Without one, ``--multi_gpu`` with ``num_processes``: torchrun's launcher,
    which on a machine without a GPU starts CPU processes that talk over gloo.
    """
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if config_file:
        cmd += ["--config_file", str(config_file)]
    else:
        cmd += ["--num_processes", str(num_processes), "--multi_gpu"]
    return cmd + list(script_argv)


def relaunch(script_argv: Sequence[str], *, num_processes: int, config_file: str | None) -> None:
    """Run the stage again under ``accelerate launch`` and wait for it; a failing process fails the stage."""
    cmd = launch_command(script_argv, num_processes=num_processes, config_file=config_file)
    log.info("launching: %s", " ".join(cmd))
    subprocess.run(cmd, check=True, env=os.environ | {LAUNCHED: "1"})


def relaunch_if_asked(argv: Sequence[str] | None, *, num_processes: int, config_file: str | None, device: str,
                      key: str) -> bool:
    """In a stage's main(): relaunch it under ``accelerate launch`` when ``num_processes`` > 1 or a config file is
    given, unless this already is a launched process. True when it did (the stage's work is then done)."""
    if is_launched() or (num_processes <= 1 and not config_file):
        return False
    if not config_file:  # a config file names its own processes and machines
        check_num_processes(num_processes, device, runtime_facts(), key)
    relaunch([sys.argv[0], *(sys.argv[1:] if argv is None else argv)], num_processes=num_processes,
             config_file=config_file)
    return True


def rank() -> int:
    """This process's global rank (0 alone): only rank 0 writes a stage's outputs."""
    return int(os.environ.get("RANK", "0"))
