"""``xiaoche plan --benchmark`` on a small instance in the folder format, as a user runs it."""

import json

from click.testing import CliRunner

from backend.cli.plan import plan_command
from routing.planning.checker import check_plan
from routing.planning.model import Params
from routing.planning.reader import read_instance

from .helpers import SBRP


def small_folder(tmp_path, stops=10):
    """RSRB01's schools with the first ``stops`` stops of its file."""
    folder = tmp_path / "RSRB01"
    folder.mkdir()
    (folder / "Schools.txt").write_text((SBRP / "RSRB01" / "Schools.txt").read_text())
    lines = (SBRP / "RSRB01" / "Stops.txt").read_text().splitlines()[: stops + 1]
    (folder / "Stops.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_plan_writes_a_solution_in_the_spec_form_that_the_checker_accepts(tmp_path):
    folder, out = small_folder(tmp_path), tmp_path / "solution.json"
    result = CliRunner().invoke(plan_command, ["--benchmark", str(folder), "--time-limit", "2",
                                               "--max-ride-s", "2700", "--out", str(out)])
    assert result.exit_code == 0, result.output
    solution = json.loads(out.read_text())
    assert solution["instance"] == "RSRB01"
    assert solution["max_riding_time_s"] == 2700
    first = solution["buses"][0]
    assert first["bus"] == 1
    assert set(first["routes"][0]) == {"school", "stops", "school_arrival_s"}
    assert set(first["routes"][0]["stops"][0]) == {"stop", "arrival_s", "students"}
    instance = read_instance("RSRB01", (folder / "Schools.txt").read_text(),
                             (folder / "Stops.txt").read_text())
    assert check_plan(instance, solution, Params()) == []
    assert f"RSRB01: {len(solution['buses'])} buses" in result.stdout
    assert "checked: feasible" in result.stdout
    assert "school 200001 (1/6)" in result.stderr


def test_a_folder_without_the_instance_files_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(plan_command, ["--benchmark", str(tmp_path),
                                               "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 1
    assert "Schools.txt not found" in result.output
    assert not (tmp_path / "s.json").exists()


def test_a_bad_instance_file_is_a_clear_error(tmp_path):
    folder = small_folder(tmp_path)
    (folder / "Stops.txt").write_text("ID\tX_COORD\tY_COORD\tEP_ID\tSTUDENT_COUNT\n"
                                      "1\t0\t0\t999\t3\n")
    result = CliRunner().invoke(plan_command, ["--benchmark", str(folder),
                                               "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 1
    assert "Stops.txt line 2: school '999' is not in Schools.txt" in result.output


def test_a_ride_limit_no_stop_can_keep_is_a_clear_error(tmp_path):
    folder = small_folder(tmp_path)
    result = CliRunner().invoke(plan_command, ["--benchmark", str(folder), "--max-ride-s", "60",
                                               "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 1
    assert "is more than the maximum ride from school" in result.output
