"""Trend charts a clinician reads at a glance (clinical/charts.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from clinical import charts, display
from clinical.readings import Measure, Reading, Series, When

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def at(days_ago: float, hour: int = 9) -> When:
    return When.parse((NOW - timedelta(days=days_ago)).replace(hour=hour, minute=0))


def measure(key: str, points, *, outliers=(), adult=True) -> Measure:
    definition = display.measure_by_key(key)
    unit = display.human_unit(definition.unit)
    series = Series(definition.name, unit, tuple(points), outliers=tuple(outliers))
    latest = Reading(points[-1][0], str(points[-1][1]), unit, points[-1][1])
    return Measure(key, definition.name, latest, (latest,), (series,), definition=definition, adult=adult)


def test_the_window_is_twelve_months_plus_the_reading_before_it_or_everything_if_older():
    points = [(at(d), float(70 + i), False) for i, d in enumerate((900, 500, 300, 10))]
    assert [p[0] for p in charts.window(points, NOW.timestamp())] == [
        points[1][0],
        points[2][0],
        points[3][0],
    ]
    old = points[:2]
    assert charts.window(old, NOW.timestamp()) == tuple(old)  # never an empty chart
    since = (NOW - timedelta(days=20)).timestamp()  # an inpatient stay: since admission
    assert charts.window(points, NOW.timestamp(), since) == tuple(points[2:])


def test_a_dense_series_is_one_point_per_day_with_its_range_and_ends_on_the_real_latest_reading():
    points = [(at(i / 6), 60.0 + (i % 6) * 10, False) for i in range(120, 0, -1)]
    points.append((at(0, hour=11), 77.0, False))
    reduced, ranges = charts.downsample(points)
    assert len(reduced) <= 22 and reduced[-1] == points[-1]
    assert all(low <= high for _t, low, high in ranges) and ranges


def test_a_vital_chart_uses_a_fixed_clinical_scale_the_band_and_labels_at_its_precision():
    spo2 = measure("spo2", [(at(3), 99.0, False), (at(2), 97.0, False), (at(1), 96.0, False)])
    svg = charts.line_chart(spo2, "c", NOW.timestamp())
    assert ">100</text>" in svg and ">80</text>" in svg  # 80-100 %, not 96-99
    assert 'class="chart-band"' in svg and ">96</text>" in svg and "96.0" not in svg
    assert svg.count("<title>") == 4  # one per point, and the band's


def test_a_childs_chart_has_no_adult_band_and_an_impossible_value_does_not_stretch_the_scale():
    hr = measure("hr", [(at(3), 110.0, False), (at(2), 114.0, False)], adult=False)
    assert "chart-band" not in charts.line_chart(hr, "c", NOW.timestamp())
    spo2 = measure("spo2", [(at(3), 97.0, False), (at(1), 96.0, False)], outliers=[(at(2), 101.0)])
    svg = charts.line_chart(spo2, "c", NOW.timestamp())
    assert 'class="chart-outlier"' in svg and ">101</text>" not in svg
    assert re.search(r"Impossible value 101", svg)


def test_weight_without_a_fixed_scale_is_not_drawn_as_a_swing():
    weight = measure("weight", [(at(60), 82.1, False), (at(1), 82.9, False)])
    svg = charts.line_chart(weight, "c", NOW.timestamp())
    top, bottom = (float(v) for v in re.findall(r'text-anchor="end">([\d.]+)</text>', svg)[:2])
    assert top - bottom >= 8  # at least ±5 % around 82.5 kg


def test_a_redrawn_chart_is_remembered_only_for_exactly_the_same_inputs(settings):
    settings.TIME_ZONE = "UTC"
    points = [(at(400), 66.0, False), (at(300), 70.0, False), (at(200), 74.0, False), (at(10), 78.0, False)]
    hr = measure("hr", points)
    first = charts.line_chart(hr, "c", NOW.timestamp())
    assert charts.line_chart(measure("hr", points), "c", NOW.timestamp()) is first  # same readings
    newer = charts.line_chart(measure("hr", [*points, (at(1), 120.0, True)]), "c", NOW.timestamp())
    assert newer is not first and "120" in newer
    later = charts.line_chart(hr, "c", (NOW + timedelta(days=120)).timestamp())
    assert first.count("<circle") == 4 and later.count("<circle") == 3  # the window moved on
    assert charts.line_chart(measure("hr", points, adult=False), "c", NOW.timestamp()) != first
    settings.TIME_ZONE = "Asia/Tokyo"  # the point titles say times in the app's zone
    assert "18:00" in charts.line_chart(hr, "c", NOW.timestamp()) and "18:00" not in first


def test_a_reading_sent_at_another_precision_is_another_chart():
    month = [(When.parse("2024-03"), 70.0, False), (When.parse("2025-01-10"), 72.0, False)]
    day = [(When.parse("2024-03-01"), 70.0, False), (When.parse("2025-01-10"), 72.0, False)]
    assert month[0][0] == day[0][0]  # the same instant to the dataclass
    now = datetime(2025, 1, 20, tzinfo=UTC).timestamp()
    assert ", Mar 2024</title>" in charts.line_chart(measure("hr", month), "c", now)
    assert ", 1 Mar 2024</title>" in charts.line_chart(measure("hr", day), "c", now)
