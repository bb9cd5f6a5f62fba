import pytest

from routing.planning.reader import hhmm_to_s, read_instance

from .helpers import SBRP, benchmark

SCHOOLS = "ID\tX\tY\tAMEARLY\tAMLATE\n200001\t0\t0\t710\t735\n"
STOPS = "ID\tX_COORD\tY_COORD\tEP_ID\tSTUDENT_COUNT\n100001\t10\t20\t200001\t16\n"


def test_a_real_instance_reads_with_every_school_and_stop():
    inst = benchmark("RSRB01")
    assert len(inst.schools) == 6
    assert len(inst.stops) == 250
    first = inst.school("200001")
    assert (first.x, first.y, first.bell_s) == (264.26, 119029.0, 5 * 3600 + 10 * 60)
    stop = inst.stops[0]
    assert (stop.id, stop.x, stop.y, stop.school_id, stop.students) == (
        "100001", 168.07, 118471.0, "200001", 16)


def test_every_benchmark_instance_reads():
    names = sorted(p.name for p in SBRP.iterdir() if p.is_dir())
    assert names == ["CSCB01", "CSCB02", "CSCB03", "CSCB04",
                     "RSRB01", "RSRB02", "RSRB03", "RSRB04"]
    for name in names:
        inst = benchmark(name)
        assert {s.school_id for s in inst.stops} <= {s.id for s in inst.schools}


def test_hhmm_times_become_seconds_after_midnight():
    assert hhmm_to_s("945") == 35100.0
    assert hhmm_to_s("1030") == 37800.0
    for bad in ("9x5", "2460", "1075", "", "12345"):
        with pytest.raises(ValueError):
            hhmm_to_s(bad)


@pytest.mark.parametrize(("schools", "stops", "message"), [
    ("ID\tX\tY\n200001\t0\t0\n", STOPS, "header lacks AMEARLY"),
    (SCHOOLS.replace("710", "7h10"), STOPS, "Schools.txt line 2"),
    (SCHOOLS, STOPS.replace("\t200001\t", "\t200009\t"), "school '200009' is not in"),
    (SCHOOLS, STOPS.replace("\t16", "\t-3"), "STUDENT_COUNT '-3'"),
    (SCHOOLS, STOPS + STOPS.splitlines()[1] + "\n", "duplicate stop ID"),
    (SCHOOLS, STOPS.replace("\t20\t", "\tnorth\t"), "'north' is not a number"),
    (SCHOOLS, STOPS.replace("\t16", "\t16\t1"), "6 fields"),
    ("", STOPS, "Schools.txt: empty"),
])
def test_bad_files_are_refused_naming_the_file_and_the_fault(schools, stops, message):
    with pytest.raises(ValueError, match=message):
        read_instance("x", schools, stops)


def test_stops_without_children_are_left_out():
    inst = read_instance("x", SCHOOLS, STOPS + "100002\t5\t5\t200001\t0\n")
    assert [s.id for s in inst.stops] == ["100001"]
