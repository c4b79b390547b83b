"""absl flags shared by the entry points.

Several jobs take the same flag (`--data_dir`, `--output_dir`, `--seed`, ...) and tests import several job
modules into one process, so each job defines its flags through `define`, which leaves a flag that
another module defined first as it is (same name, same meaning everywhere in smdiff).
"""
from absl import flags


def define(kind: str, name: str, default, help_text: str, **kwargs) -> None:
    """flags.DEFINE_<kind>(name, default, help_text) unless `name` is already defined."""
    if name not in flags.FLAGS:
        getattr(flags, f"DEFINE_{kind}")(name, default, help=help_text, **kwargs)
