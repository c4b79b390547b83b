"""Building `pianorolls` configs on a slice of real chorales in a test (shared by the tests that compare two
configs built on the same pieces)."""
import collections
import dataclasses
from typing import Callable

from smdiff.data import chorales
from smdiff.data.pianoroll_segments import SPLITS, SegmentConfig


def build_on_slice(pieces: list[chorales.Piece], names: tuple[str, ...], segment_of: Callable[..., SegmentConfig],
                   data_dir: str, monkeypatch) -> dict[str, dict]:
    """{config name: {split: its examples sorted by (piece, transpose, start_step), "metadata": the saved
    statistics}} for the named configs built on `pieces`, each with the SegmentConfig segment_of(config)."""
    import tensorflow_datasets as tfds

    from smdiff.data.tfds_io import load_metadata
    from tfds_builders.pianorolls import pianorolls

    monkeypatch.setattr(pianorolls.chorales, "load_chorales", lambda spq: (pieces, collections.Counter()))
    configs = {config.name: config for config in pianorolls.Pianorolls.BUILDER_CONFIGS}
    built = {}
    for name in names:
        config = dataclasses.replace(configs[name], name=f"{name}_slice", segment=segment_of(configs[name]))
        builder = pianorolls.Pianorolls(config=config, data_dir=data_dir)
        builder.download_and_prepare()
        built[name] = {split: sorted(tfds.as_numpy(builder.as_dataset(split=split)),
                                     key=lambda e: (e["piece"], e["transpose"], e["start_step"]))
                       for split in SPLITS}
        built[name]["metadata"] = load_metadata(builder.data_dir)
    return built
