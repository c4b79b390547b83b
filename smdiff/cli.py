"""The `smdiff` console script: one front for every job.

`smdiff <job> [flags]` runs that job's `main`, e.g. `smdiff train --gin_file=... --workdir=...`. Every job is
a module at the top of the package with its own flag namespace (`FLAGS`, see smdiff/jobflags.py); modules
are imported only when their job is asked for, so `smdiff --help` stays fast.
"""
import importlib
import sys

from absl import app

from smdiff import jobflags, joblog

# job name -> module with `main(argv)` and its `FLAGS` (or `cli_main(argv)`, a job with its own parser).
JOBS = {
    "build": "smdiff.build",
    "stats": "smdiff.stats",
    "train": "smdiff.train",
    "convert-magenta": "smdiff.convert_magenta",
    "vae-report": "smdiff.vae_report",
    "pianoroll-eval": "smdiff.pianoroll_eval",
    "sample": "smdiff.sample",
    "evaluate": "smdiff.evaluate",
    "reverse-process": "smdiff.reverse_process",
    "demo": "smdiff.demo",
}
HELP = ("-h", "-help", "--help", "--helpshort", "--helpfull")


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
    if job != "demo":  # the demo runs every job in its own process
        joblog.import_tensorflow_quietly(argv[2:])
    module = importlib.import_module(JOBS[job])
    program = f"smdiff {job}"
    if hasattr(module, "cli_main"):  # a job with its own argument parser
        try:
            module.cli_main([program, *argv[2:]])
        finally:
            joblog.finish()
        return
    if any(arg in HELP for arg in argv[2:]):
        print(f"usage: {program} [--flags]\n\n{(module.__doc__ or '').strip()}\n\nflags:\n{module.FLAGS.get_help()}")
        sys.exit(0)
    renamed = getattr(module, "RENAMED_FLAGS", None)
    try:  # app.run ends with sys.exit
        app.run(module.main, argv=[program, *argv[2:]],
                flags_parser=lambda args: jobflags.parse(module.FLAGS, args, renamed))
    finally:
        joblog.finish()  # a URL folder's job log into the bucket


if __name__ == "__main__":
    main()
