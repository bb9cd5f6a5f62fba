"""A small county in OpenStreetMap XML, written by the tests: a river with one bridge.

Two roads run north–south, one on each bank of a river 2 km wide (lon 113.00 and 113.02); the
only bridge crosses at the north end (lat 27.05, about 5.6 km up). A village on the west bank
at lat 27.00 is 2 km from the school across the water but about 13 km away by road.
"""

from __future__ import annotations

from pathlib import Path

WEST, EAST = 113.00, 113.02
LATS = [27.00, 27.01, 27.02, 27.03, 27.04, 27.05]
VILLAGE = (27.00, WEST + 0.0005)  # about 50 m off the west road
SCHOOL = (27.00, EAST)
#: bridge + both banks' roads between lat 27.00 and 27.05, in metres (haversine, R=6371 km)
ROAD_M = 13_100.1


def osm_xml(*, tertiary_maxspeed: str | None = None, extra_nodes: str = "",
            extra_ways: str = "") -> str:
    nodes, ways = [], []
    for side, lon in ((1, WEST), (2, EAST)):
        ids = []
        for k, lat in enumerate(LATS):
            nid = side * 100 + k
            ids.append(nid)
            nodes.append(f'<node id="{nid}" version="1" lat="{lat}" lon="{lon}"/>')
        refs = "".join(f'<nd ref="{i}"/>' for i in ids)
        speed = f'<tag k="maxspeed" v="{tertiary_maxspeed}"/>' if tertiary_maxspeed else ""
        ways.append(f'<way id="{side}" version="1">{refs}<tag k="highway" v="tertiary"/>'
                    f"{speed}</way>")
    ways.append('<way id="3" version="1"><nd ref="105"/><nd ref="205"/>'
                '<tag k="highway" v="tertiary"/><tag k="bridge" v="yes"/></way>')
    # a footbridge at the south end: no road for a bus
    ways.append('<way id="4" version="1"><nd ref="100"/><nd ref="200"/>'
                '<tag k="highway" v="footway"/><tag k="bridge" v="yes"/></way>')
    return ("<?xml version='1.0' encoding='UTF-8'?>\n"
            '<osm version="0.6" generator="xiaoche tests">\n' + "\n".join(nodes) + extra_nodes + "\n"
            + "\n".join(ways) + extra_ways + "\n</osm>\n")


def write_osm(tmp_path: Path, **kwargs) -> Path:
    path = tmp_path / "county.osm"
    path.write_text(osm_xml(**kwargs), encoding="utf-8")
    return path


def river_bundle() -> dict:
    """A district of one school on the east bank and one village on the west bank."""
    return {
        "district": {"id": "river"},
        "schools": [{"id": "east", "name": "东岸学校", "lat": SCHOOL[0], "lon": SCHOOL[1]}],
        "stops": [{"id": "west-village", "name": "西岸村", "lat": VILLAGE[0],
                   "lon": VILLAGE[1]}],
        "students": [{"school_id": "east", "stop_id": "west-village"} for _ in range(3)],
        "vehicles": [{"id": "bus-1", "kind": "school_bus", "seats": 19, "route_ids": []}],
        "routes": [],
    }
