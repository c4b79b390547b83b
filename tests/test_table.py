"""Table 1 rendering."""
import json

from smdiff.evaluation import table


def test_paper_table_renders_with_dashes_for_missing_tasks(tmp_path):
    markdown = table.write(table.paper_results(), str(tmp_path / "t.md"), str(tmp_path / "t.json"), "Paper")
    lines = markdown.splitlines()
    assert lines[0] == "**Paper**"
    mdn = next(line for line in lines if line.startswith("| Autoregression"))
    assert mdn == "| Autoregression (MDN) | 0.93 | 0.68 | 0.93 | 0.76 | - | - | - | - |"
    # Rows come in the paper's order whatever the dict order.
    assert [line.split(" | ")[0] for line in lines[4:]] == ["| " + row for row in table.ROW_ORDER]
    assert json.loads((tmp_path / "t.json").read_text())["Test"]["infilling"]["duration"] == [1.0, 0.91]


def test_cells_carry_their_intervals():
    results = {"Diffusion": {"unconditional": {"pitch": (0.987, 0.81), "duration": (0.93, 0.824)}}}
    intervals = {"Diffusion": {"unconditional": {"pitch": {"C": (0.97, 1.0), "Var": (0.755, 0.862)},
                                                 "duration": {"C": (0.912, 0.948), "Var": (0.7, 0.9)}}}}
    line = next(line for line in table.to_markdown(results, intervals=intervals).splitlines()
                if line.startswith("| Diffusion"))
    assert line == ("| Diffusion | 0.99 (0.97-1.00) | 0.81 (0.76-0.86) | 0.93 (0.91-0.95) | 0.82 (0.70-0.90) "
                    "| - | - | - | - |")
