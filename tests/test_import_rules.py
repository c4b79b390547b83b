"""The import rules of docs/ARCHITECTURE.md, read from the source with `ast` (nothing is imported).

Library = the packages under smdiff/ (codec, data, diffusion, evaluation, generators, models, sampling,
tasks, training); jobs and edges = the modules at the top of smdiff/ (the jobs, cli, configurables,
jobflags, joblog).
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIBRARY_PACKAGES = sorted(path.name for path in (ROOT / "smdiff").iterdir()
                          if path.is_dir() and (path / "__init__.py").exists())
TOP_MODULES = sorted(path.stem for path in (ROOT / "smdiff").glob("*.py") if path.stem != "__init__")
FORBIDDEN_IN_LIBRARY = ("gin", "absl.flags", "absl.app", "tfds_builders")


def _module_name(path: pathlib.Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _imports(path: pathlib.Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) of every import in `path`; `from a import b` counts as
    `a.b`, so importing a submodule by name is seen."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.extend((f"{child.module}.{alias.name}", child.lineno, in_function) for alias in child.names)
            visit(child, nested)

    visit(tree, False)
    return found


def _files(*parts: str) -> list[pathlib.Path]:
    return sorted(ROOT.joinpath(*parts).rglob("*.py"))


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_the_layout_is_as_documented():
    assert set(LIBRARY_PACKAGES) == {"codec", "data", "diffusion", "evaluation", "generators", "models",
                                     "sampling", "tasks", "training"}
    assert {"cli", "configurables", "train", "sample", "evaluate", "build", "demo"} <= set(TOP_MODULES)


@pytest.mark.parametrize("path", [p for package in LIBRARY_PACKAGES for p in _files("smdiff", package)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_library_imports_no_job_flags_gin_or_builder(path):
    for module, line, _ in _imports(path):
        assert not any(_within(module, f"smdiff.{top}") for top in TOP_MODULES), \
            f"{path.name}:{line} imports the job/edge module {module}"
        assert not any(_within(module, name) for name in FORBIDDEN_IN_LIBRARY), \
            f"{path.name}:{line} imports {module} (the library takes no flags, gin or builders)"


@pytest.mark.parametrize("path", _files("smdiff", "data"), ids=lambda p: p.name)
def test_data_imports_no_models_or_training(path):
    for module, line, _ in _imports(path):
        assert not (_within(module, "smdiff.models") or _within(module, "smdiff.training")), \
            f"{path.name}:{line} imports {module}: data/ is below models and training"


@pytest.mark.parametrize("path", _files("tfds_builders"), ids=lambda p: str(p.relative_to(ROOT)))
def test_builders_import_the_library_not_jobs(path):
    allowed_top = {"configurables"}  # the gin edge rebuilds melody_latents' VAE from its workdir
    for module, line, _ in _imports(path):
        assert not any(_within(module, f"smdiff.{top}") for top in set(TOP_MODULES) - allowed_top), \
            f"{path.name}:{line} imports the job module {module}"


@pytest.mark.parametrize("path", _files("smdiff") + _files("tfds_builders"), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_of_smdiff_or_builders_inside_functions(path):
    """Imports inside functions were how the old layout dodged its cycles; the layout has none left."""
    for module, line, in_function in _imports(path):
        assert not (in_function and (_within(module, "smdiff") or _within(module, "tfds_builders"))), \
            f"{path.name}:{line} imports {module} inside a function"


def test_only_jobs_import_builders():
    importers = {_module_name(path) for path in _files("smdiff")
                 if any(_within(module, "tfds_builders") for module, _, _ in _imports(path))}
    assert importers <= {f"smdiff.{top}" for top in TOP_MODULES} - {"smdiff.configurables", "smdiff.jobflags",
                                                                     "smdiff.joblog", "smdiff.cli"}
