"""Each job's own absl flag namespace, and the old flag spellings the CLI still accepts.

Every job module owns a `FLAGS = jobflags.namespace()` and defines its flags into it
(`flags.DEFINE_string(..., flag_values=FLAGS)`), so two jobs may define the same name with their own
default and no default depends on which job module was imported first. absl's logging flags
(`--verbosity`, `--log_dir`, ...) are shared by every namespace (they are one process-wide setting).
"""
from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from absl import flags


def namespace() -> flags.FlagValues:
    """A fresh flag namespace holding only absl's logging flags."""
    flag_values = flags.FlagValues()
    for flag in flags.FLAGS.get_flags_for_module("absl.logging"):
        flag_values[flag.name] = flag
    return flag_values


def define_melody_reference(flag_values: flags.FlagValues) -> None:
    """The datasets a set of melodies is measured against (`smdiff evaluate`, `smdiff reverse-process`):
    the melody windows (the OA metric's GT is drawn from their train split) and the latents (FD/MMD:
    their test split)."""
    flags.DEFINE_string("data_dir", "data/tfds", "TFDS data_dir of the datasets", flag_values=flag_values)
    flags.DEFINE_string("windows", "melody_windows/embedded", "melody windows dataset (GT: its train split)",
                        flag_values=flag_values)
    flags.DEFINE_string("latents", "melody_latents/embedded", "latent dataset (FD/MMD: its test split)",
                        flag_values=flag_values)
    flags.DEFINE_integer("max_reference", 20000, "training windows in the GT set at most", flag_values=flag_values)


def parse(flag_values: flags.FlagValues, argv: Sequence[str], renamed: Mapping[str, str] | None = None) -> list[str]:
    """Parses `argv` (program name first) into `flag_values`; returns the positional arguments.

    `renamed` maps an old flag name to its new one: `--old=x`, `--old x` and `--[no]old` are accepted with
    a warning on stderr (for one release). The global absl FLAGS are marked parsed, as app.run expects.
    """
    argv = [argv[0], *(_rename(arg, renamed or {}, argv[0]) for arg in argv[1:])]
    rest = flag_values(argv)
    flags.FLAGS.mark_as_parsed()
    return rest


def _rename(arg: str, renamed: Mapping[str, str], program: str) -> str:
    if not arg.startswith("--"):
        return arg
    name, sep, value = arg[2:].partition("=")
    prefix = "no" if name.startswith("no") and name[2:] in renamed else ""
    old = name[len(prefix):]
    if old not in renamed:
        return arg
    print(f"{program}: --{old} is deprecated and will be removed in the next release; use --{renamed[old]}",
          file=sys.stderr)
    return f"--{prefix}{renamed[old]}{sep}{value}"
