"""Glue between a step function and its two callers: a Snakemake `script:` rule and the command line.

A script defines `main(*, <inputs>, <outputs>, <params>)` with keyword-only arguments named like the
rule's named input, output and params, and ends with `run(main, globals())`. Under Snakemake the
arguments come from the rule and everything printed goes to the rule's log; from a shell,
`python scripts/<step>.py --help` lists the same arguments (values are JSON, or plain strings).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import torch

from blindlca.errors import InputError
from blindlca.runlog import log_to


def _call(main: Callable[..., None], kwargs: dict[str, Any], log: str | None) -> None:
    """Run `main` with its log; a problem with the user's input ends the process with its message alone."""
    try:
        with log_to(log):
            main(**kwargs)
    except InputError as err:
        print(f"\nblindlca: {err}\n", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def _named(items: Any) -> dict[str, Any]:
    return {k: v for k, v in items.items()}


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def run(main: Callable[..., None], namespace: dict[str, Any]) -> None:
    """Call `main` with the arguments of the Snakemake job in `namespace`, or from `sys.argv`."""
    smk = namespace.get("snakemake")
    if smk is not None:
        kwargs = {**_named(smk.input), **_named(smk.output), **_named(smk.params)}
        # Resources that `main` names (e.g. batch_images) shape memory use, never results: passing them
        # as resources rather than params keeps a change of them from triggering reruns.
        resources = _named(smk.resources) if getattr(smk, "resources", None) is not None else {}
        wanted = inspect.signature(main).parameters
        kwargs.update({k: v for k, v in resources.items() if k in wanted and k not in kwargs})
        kwargs.pop("code", None)  # the rules' code-version param only triggers reruns
        if "gpu" in resources and not resources["gpu"]:
            # A job granted no GPU must not take one: `device: auto` then resolves to the CPU.
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        torch.set_num_threads(max(1, int(smk.threads)))
        _call(main, kwargs, smk.log[0] if len(smk.log) else None)
        return
    params = inspect.signature(main).parameters
    parser = argparse.ArgumentParser(
        prog=namespace.get("__file__", "step"),
        description=inspect.getdoc(sys.modules[main.__module__]) or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name, p in params.items():
        required = p.default is inspect.Parameter.empty
        parser.add_argument(
            f"--{name}",
            type=_parse_value,
            required=required,
            default=None if required else p.default,
            help="JSON value or plain string" + ("" if required else f" (default {p.default!r})"),
        )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    args = vars(parser.parse_args())
    torch.set_num_threads(args.pop("threads"))
    _call(main, args, None)
