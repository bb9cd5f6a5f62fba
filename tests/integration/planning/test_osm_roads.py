"""Travel times along an OpenStreetMap extract's roads (``--osm``, ``XIAOCHE_PLAN_OSM``)."""

import json

import pytest
from click.testing import CliRunner

from backend.cli.plan import plan_command
from backend.osm_roads import OsmError, read_roads, road_times
from backend.planning_service import plan_district
from tests.integration.planning.osm_fixture import (
    LATS,
    ROAD_M,
    SCHOOL,
    VILLAGE,
    WEST,
    river_bundle,
    write_osm,
)


def seconds(hh_mm_ss: str) -> int:
    h, m, s = (int(p) for p in hh_mm_ss.split(":"))
    return h * 3600 + m * 60 + s


def test_the_graph_keeps_the_roads_a_bus_drives_both_ways_and_not_the_footbridge(tmp_path):
    roads = read_roads(write_osm(tmp_path))
    assert roads.nodes == 12
    assert roads.edges == 2 * (5 + 5 + 1)  # two banks of five segments and the bridge
    assert roads.source == "county.osm"


def test_travel_between_the_banks_goes_round_by_the_bridge(tmp_path):
    roads = read_roads(write_osm(tmp_path))
    times = road_times(roads, [VILLAGE, SCHOOL], lambda i, j: (1.0, 1.0))
    village_snap, school_snap = times.snap_m
    assert 45 < village_snap < 55 and school_snap == pytest.approx(0, abs=0.01)
    # the road at 40 km/h (tertiary), plus the 50 m lane at 15 km/h; not the 1.9 km across
    expected = ROAD_M / (40 / 3.6) + village_snap / (15 / 3.6)
    assert times.seconds[0, 1] == pytest.approx(expected, rel=1e-3)
    assert times.seconds[1, 0] == pytest.approx(expected, rel=1e-3)
    assert times.metres[0, 1] == pytest.approx(ROAD_M + village_snap, rel=1e-3)


def test_maxspeed_is_used_but_never_above_what_a_school_bus_may_drive(tmp_path):
    slow = read_roads(write_osm(tmp_path, tertiary_maxspeed="20"))
    fast = read_roads(write_osm(tmp_path, tertiary_maxspeed="100 km/h"))
    # the bank roads take their maxspeed; the bridge (no maxspeed) stays at 40 km/h
    assert sorted(set(slow.seconds.round(1)))[-1] == pytest.approx(1111.9 / (20 / 3.6), 1e-3)
    assert min(fast.seconds) == pytest.approx(1111.9 / (60 / 3.6), rel=1e-3)


def test_a_one_way_road_is_driven_one_way_only(tmp_path):
    node = f'<node id="900" version="1" lat="{LATS[0]}" lon="{WEST - 0.01}"/>'
    oneway = ('<way id="5" version="1"><nd ref="100"/><nd ref="900"/>'
              '<tag k="highway" v="residential"/><tag k="oneway" v="yes"/></way>')
    roads = read_roads(write_osm(tmp_path, extra_nodes=node, extra_ways=oneway))
    assert roads.nodes == 13 and roads.edges == 2 * 11 + 1
    west_end, spur = 0, 12  # node indices in reading order
    pairs = set(zip(roads.tail.tolist(), roads.head.tolist(), strict=True))
    assert (west_end, spur) in pairs and (spur, west_end) not in pairs


def test_a_district_plan_on_roads_times_the_ride_along_them(tmp_path):
    roads = read_roads(write_osm(tmp_path))
    draft, report = plan_district(river_bundle(), time_limit_s=1, bells={"east": "07:30"},
                                  roads=roads)
    (route,) = draft["routes"]
    times = [seconds(t) for t in route["runs"][0]["times"]]
    assert times[-1] == seconds("07:30:00")
    # 13.1 km at 40 km/h is about 20 minutes (straight line × 1.3 at 30 km/h: about 5)
    ride_s = times[-1] - times[0]
    assert 19 * 60 < ride_s < 21 * 60
    assert report["km"] == pytest.approx(13.1, abs=0.1)
    assert report["travel"] == ("OSM roads from county.osm: 12 nodes, 22 edges; "
                                "2 points snapped, farthest 50 m")
    straight, report = plan_district(river_bundle(), time_limit_s=1, bells={"east": "07:30"})
    times = [seconds(t) for t in straight["routes"][0]["runs"][0]["times"]]
    assert times[-1] - times[0] < 6 * 60
    assert "straight line × 1.3 at 30.0 km/h" in report["travel"]


def test_a_point_far_from_every_road_keeps_the_straight_line_and_is_named(tmp_path):
    district = river_bundle()
    district["stops"].append({"id": "hill", "name": "山村", "lat": 26.98, "lon": 113.03})
    district["students"].append({"school_id": "east", "stop_id": "hill"})
    roads = read_roads(write_osm(tmp_path))
    draft, report = plan_district(district, time_limit_s=1, bells={"east": "07:30"},
                                  roads=roads)
    assert report["travel"].endswith(
        "; 1 more than 500 m from any road keep the straight line × 1.3: hill")
    assert {r["stops"][0]["stop_id"] for r in draft["routes"]} <= {"hill", "west-village"}


def test_the_command_plans_on_the_roads_and_says_so(tmp_path):
    district, out = tmp_path / "d.json", tmp_path / "draft.json"
    district.write_text(json.dumps(river_bundle(), ensure_ascii=False), encoding="utf-8")
    result = CliRunner().invoke(plan_command, [
        "--district", str(district), "--bell", "east=07:30", "--time-limit", "1",
        "--osm", str(write_osm(tmp_path)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert ("travel: OSM roads from county.osm: 12 nodes, 22 edges; 2 points snapped, "
            "farthest 50 m") in result.stdout
    assert json.loads(out.read_text(encoding="utf-8"))["routes"]


@pytest.mark.parametrize(("content", "name", "message"), [
    (b"\x00\x00\x00\x0fgarbage" * 4, "county.osm.pbf", "not a readable OpenStreetMap extract"),
    (b"<osm version='0.6'><node id='1' lat='27' lon='113'/>", "county.osm",
     "not a readable OpenStreetMap extract"),
    (b"<?xml version='1.0'?><osm version='0.6'></osm>", "county.osm", "no road a bus can drive"),
    (None, "missing.osm.pbf", "no such file"),
])
def test_a_bad_extract_is_a_clear_error_not_a_traceback(tmp_path, content, name, message):
    osm = tmp_path / name
    if content is not None:
        osm.write_bytes(content)
    with pytest.raises(OsmError, match=message):
        read_roads(osm)
    district = tmp_path / "d.json"
    district.write_text(json.dumps(river_bundle(), ensure_ascii=False), encoding="utf-8")
    result = CliRunner().invoke(plan_command, [
        "--district", str(district), "--bell", "east=07:30", "--osm", str(osm),
        "--out", str(tmp_path / "o.json")])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not isinstance(result.exception, OsmError)  # click's own error, not a crash


def test_osm_is_for_district_plans(tmp_path):
    result = CliRunner().invoke(plan_command, [
        "--benchmark", str(tmp_path), "--osm", str(write_osm(tmp_path)),
        "--out", str(tmp_path / "o.json")])
    assert result.exit_code == 2 and "--osm are for --district" in result.output


def test_post_plans_follows_the_servers_extract_and_refuses_a_bad_one(app, client, imported,
                                                                      tmp_path):
    from tests.conftest import login

    admin = login(client, "admin", "demo-admin-1")
    app.config["PLAN_OSM"] = str(write_osm(tmp_path))  # far from the sample: no point snaps
    answer = client.post("/api/v1/plans", json={"time_limit_s": 1}, headers=admin)
    assert answer.status_code == 200, answer.get_json()
    travel = answer.get_json()["report"]["travel"]
    assert travel.startswith("OSM roads from county.osm: 12 nodes, 22 edges; 0 points snapped")
    bad = tmp_path / "bad.osm.pbf"
    bad.write_bytes(b"not a pbf at all")
    app.config["PLAN_OSM"] = str(bad)
    answer = client.post("/api/v1/plans", json={"time_limit_s": 1}, headers=admin)
    assert answer.status_code == 422
    assert "XIAOCHE_PLAN_OSM" in answer.get_json()["detail"]
    assert "not a readable OpenStreetMap extract" in answer.get_json()["detail"]


def test_a_point_snaps_to_the_connected_network_not_to_a_nearer_stray_piece_of_road(tmp_path):
    # a farm lane mapped on its own, 33 m from the village, joined to nothing
    lane = "".join(f'<node id="{900 + k}" version="1" lat="{VILLAGE[0] + 0.0003 * (k + 1)}" '
                   f'lon="{VILLAGE[1]}"/>' for k in range(2))
    way = ('<way id="6" version="1"><nd ref="900"/><nd ref="901"/>'
           '<tag k="highway" v="service"/></way>')
    roads = read_roads(write_osm(tmp_path, extra_nodes=lane, extra_ways=way))
    assert roads.nodes == 14
    times = road_times(roads, [VILLAGE, SCHOOL], lambda i, j: (1.0, 1.0))
    assert 45 < times.snap_m[0] < 55  # the west road, not the lane
    assert times.metres[0, 1] == pytest.approx(ROAD_M + times.snap_m[0], rel=1e-3)
