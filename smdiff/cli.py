"""The `smdiff` console script: one front for every job.

`smdiff <job> [flags]` runs that job's absl `main`, e.g. `smdiff train --gin_file=... --workdir=...`.
Modules are imported only when their job is asked for, so `smdiff --help` stays fast.
"""
import importlib
import sys

from absl import app, flags

from smdiff import flag_defs

# job name -> module with an absl-style `main(argv)`.
JOBS = {
    "build": "smdiff.build",
    "stats": "smdiff.stats",
    "train": "smdiff.training.loop",
    "convert-magenta": "smdiff.models.magenta_checkpoint",
    "vae-report": "smdiff.vae_report",
    "pianoroll-eval": "smdiff.pianoroll_eval",
    "sample": "smdiff.sample",
    "evaluate": "smdiff.evaluate",
    "reverse-process": "smdiff.reverse_process",
    "demo": "smdiff.demo",
}


def usage() -> str:
    jobs = "\n".join(f"  {name:16s} ({module})" for name, module in JOBS.items())
    return f"usage: smdiff <job> [--flags]\n\njobs:\n{jobs}\n\n`smdiff <job> --help` lists a job's flags."


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv if argv is None else argv
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if len(argv) >= 2 else 2)
    job = argv[1]
    if job not in JOBS:
        print(f"smdiff: unknown job {job!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(JOBS[job])
    if hasattr(module, "cli_main"):  # a job with its own argument parser
        module.cli_main([f"smdiff {job}", *argv[2:]])
        return
    if hasattr(module, "define_flags"):
        module.define_flags()
    # `--help` lists the key flags of the module named by sys.argv[0] (this file, or the console script's
    # wrapper): make the job's flags (defined by its module or through flag_defs) key flags of that name.
    for defining_module in (module, flag_defs):
        for flag in flags.FLAGS.get_key_flags_for_module(defining_module):
            flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(module.main, argv=[f"smdiff {job}", *argv[2:]])


if __name__ == "__main__":
    main()
