"""Message texts: Simplified Chinese first, English available, in the short style of the 平安校车
SMS parents already know (plate number, stop name, child's name, local time).

Rendering never fails: a missing language falls back to zh-CN, a missing variant to the kind's
plain text, a missing kind to its name, and a missing field to an empty string.
"""

from __future__ import annotations

from collections.abc import Mapping

from notifications.model import DEFAULT_LANGUAGE

Text = tuple[str, str]  # (title, body)

#: ``(kind, variant)`` → language → (title, body). Fields are pre-formatted strings.
TEMPLATES: Mapping[tuple[str, str], Mapping[str, Text]] = {
    ("bus_approaching", ""): {
        "zh-CN": ("校车即将到站", "{plate}校车约{minutes}分钟后到达{stop_name}，请做好准备。"),
        "en": ("Bus arriving soon", "Bus {plate} arrives at {stop_name} in about {minutes} min."),
    },
    ("bus_approaching", "distance"): {
        "zh-CN": ("校车即将到站", "{plate}校车距{stop_name}约{distance_m}米，请做好准备。"),
        "en": ("Bus arriving soon", "Bus {plate} is about {distance_m} m from {stop_name}."),
    },
    ("bus_arrived_stop", ""): {
        "zh-CN": ("校车已到站", "{plate}校车已于{time}到达{stop_name}。"),
        "en": ("Bus at your stop", "Bus {plate} arrived at {stop_name} at {time}."),
    },
    ("bus_arrived_school", ""): {
        "zh-CN": ("校车已到校", "{child_name}乘坐的{plate}校车已于{time}安全到达{stop_name}。"),
        "en": ("Arrived at school", "Bus {plate} with {child_name} arrived at {stop_name} at {time}."),
    },
    ("rider_boarded", ""): {
        "zh-CN": ("孩子已上车", "{child_name}已于{time}在{stop_name}刷卡登上{plate}校车。"),
        "en": ("Boarded", "{child_name} boarded bus {plate} at {stop_name} at {time}."),
    },
    ("rider_boarded", "no_stop"): {
        "zh-CN": ("孩子已上车", "{child_name}已于{time}刷卡登上{plate}校车。"),
        "en": ("Boarded", "{child_name} boarded bus {plate} at {time}."),
    },
    ("rider_alighted", ""): {
        "zh-CN": ("孩子已下车", "{child_name}已于{time}在{stop_name}刷卡下车（{plate}校车）。"),
        "en": ("Got off the bus", "{child_name} got off bus {plate} at {stop_name} at {time}."),
    },
    ("rider_alighted", "no_stop"): {
        "zh-CN": ("孩子已下车", "{child_name}已于{time}刷卡离开{plate}校车。"),
        "en": ("Got off the bus", "{child_name} got off bus {plate} at {time}."),
    },
    ("trip_delayed", ""): {
        "zh-CN": ("校车晚点", "{route_name}（{plate}）晚点约{delay_min}分钟，预计{eta_time}到达{stop_name}。"),
        "en": ("Bus delayed", "{route_name} (bus {plate}) is running about {delay_min} min late; "
               "expected at {stop_name} at {eta_time}."),
    },
    ("trip_delayed", "no_stop"): {
        "zh-CN": ("校车晚点", "{route_name}（{plate}）晚点约{delay_min}分钟，请留意到站提醒。"),
        "en": ("Bus delayed", "{route_name} (bus {plate}) is running about {delay_min} min late; "
               "watch for the arrival alert."),
    },
    ("route_deviation", ""): {
        "zh-CN": ("线路偏离", "{plate}（{route_name}）于{time}偏离规定线路约{offset_m}米。"),
        "en": ("Route deviation", "Bus {plate} ({route_name}) left its route by about {offset_m} m "
               "at {time}."),
    },
    ("overspeed", ""): {
        "zh-CN": ("超速报警", "{plate}于{time}起超速行驶{duration_s}秒，最高{speed_kmh}公里/小时"
                  "（限速{limit_kmh}）。"),
        "en": ("Speeding", "Bus {plate} drove at up to {speed_kmh} km/h (limit {limit_kmh}) for "
               "{duration_s} s from {time}."),
    },
    ("stop_missed", ""): {
        "zh-CN": ("漏站", "{plate}（{route_name}）未停靠{stop_name}（计划{scheduled_time}）。"),
        "en": ("Missed stop", "Bus {plate} ({route_name}) did not stop at {stop_name} "
               "(scheduled {scheduled_time})."),
    },
    ("rider_wrong_bus", ""): {
        "zh-CN": ("学生乘错车", "{child_name}于{time}在{plate}校车上刷卡，应乘坐{expected_route_name}。"),
        "en": ("Wrong bus", "{child_name} scanned a card on bus {plate} at {time} but rides "
               "{expected_route_name}."),
    },
    ("device_offline", ""): {
        "zh-CN": ("车载设备离线", "{plate}的定位设备已{silent_min}分钟无信号（最后上报{last_seen_time}），"
                  "当前有运营班次。"),
        "en": ("Tracker offline", "The tracker of {plate} has been silent for {silent_min} min "
               "(last seen {last_seen_time}) during a scheduled run."),
    },
    ("device_online", ""): {
        "zh-CN": ("车载设备恢复在线", "{plate}的定位设备于{time}恢复上报，此前离线约{offline_min}分钟。"),
        "en": ("Tracker back online", "The tracker of {plate} reports again since {time}, after "
               "about {offline_min} min offline."),
    },
    ("terminal_alarm", ""): {
        "zh-CN": ("车载终端报警", "{plate}的车载终端于{time}报警，请联系驾驶员。"),
        "en": ("Terminal alarm", "The terminal of {plate} raised an alarm at {time}; call the "
               "driver."),
    },
    ("terminal_alarm", "emergency"): {
        "zh-CN": ("紧急报警", "{plate}的驾驶员于{time}按下紧急报警按钮，请立即联系驾驶员。"),
        "en": ("Emergency alarm", "The driver of {plate} pressed the emergency button at "
               "{time}; call the driver now."),
    },
    ("terminal_alarm", "overspeed"): {
        "zh-CN": ("终端超速报警", "{plate}的车载终端于{time}报告超速，车速{speed_kmh}公里/小时。"),
        "en": ("Terminal overspeed alarm", "The terminal of {plate} reported speeding at {time} "
               "({speed_kmh} km/h)."),
    },
    ("terminal_alarm", "fatigue"): {
        "zh-CN": ("疲劳驾驶报警", "{plate}的车载终端于{time}报告驾驶员疲劳驾驶，请联系驾驶员。"),
        "en": ("Fatigue alarm", "The terminal of {plate} reported a tired driver at {time}; "
               "call the driver."),
    },
    ("terminal_alarm", "power_cut"): {
        "zh-CN": ("终端主电源断开", "{plate}的车载终端于{time}报告主电源断开，定位可能中断。"),
        "en": ("Terminal power cut", "The terminal of {plate} lost its main power at {time}; "
               "tracking may stop."),
    },
    ("meal_report_missing", ""): {
        "zh-CN": ("营养餐未上报", "{school_name}{date}的营养餐数据尚未上报。"),
        "en": ("Meal report missing", "{school_name} has not reported meals for {date}."),
    },
    ("subsidy_pending", ""): {
        "zh-CN": ("交通补助待审核", "{teacher_name}{month}的交通补助待审核。"),
        "en": ("Subsidy pending", "The travel subsidy of {teacher_name} for {month} awaits review."),
    },
    ("staff_message", ""): {
        "zh-CN": ("{title}", "{body}"),
        "en": ("{title}", "{body}"),
    },
}


class _Blank(dict[str, str]):
    """Format fields; an absent one renders as nothing rather than failing."""

    def __missing__(self, key: str) -> str:
        return ""


def lookup(kind: str, language: str, variant: str = "") -> Text | None:
    """The raw template, falling back variant → plain and language → zh-CN.

    >>> lookup("bus_approaching", "fr")[0]
    '校车即将到站'
    >>> lookup("bus_arrived_stop", "en", "no_such_variant")[0]
    'Bus at your stop'
    >>> lookup("no_such_kind", "en") is None
    True
    """
    for key in ((kind, variant), (kind, "")):
        by_language = TEMPLATES.get(key)
        if by_language is not None:
            found = by_language.get(language) or by_language.get(DEFAULT_LANGUAGE)
            if found is not None:
                return found
    return None


def render(kind: str, language: str, variant: str = "",
           fields: Mapping[str, object] | None = None) -> Text:
    """Title and body of a message in the user's language.

    >>> render("bus_approaching", "zh-CN", fields={"plate": "湘B·D1234", "minutes": 5,
    ...                                             "stop_name": "龙凤村"})[1]
    '湘B·D1234校车约5分钟后到达龙凤村，请做好准备。'
    >>> render("bus_approaching", "en", fields={"plate": "湘B·D1234", "minutes": 5,
    ...                                          "stop_name": "龙凤村"})[1]
    'Bus 湘B·D1234 arrives at 龙凤村 in about 5 min.'
    >>> render("bus_arrived_stop", "ja", fields={})
    ('校车已到站', '校车已于到达。')
    >>> render("unknown_kind", "en")
    ('unknown_kind', '')
    """
    template = lookup(kind, language, variant)
    if template is None:
        return kind, ""
    values = _Blank({k: "" if v is None else str(v) for k, v in (fields or {}).items()})
    title, body = template
    return _format(title, values, kind), _format(body, values, "")


def _format(template: str, values: _Blank, fallback: str) -> str:
    try:
        return template.format_map(values)
    except (ValueError, IndexError, AttributeError, KeyError):  # a broken template: say something
        return fallback or template
