"""`opsbot eval nezha` on the shared Nezha data (skipped when the data is absent)."""

from __future__ import annotations

from pathlib import Path

from bench.nezha import cli, evaluate, pod_service
from bot.settings import load_settings
from tests.conftest import shared_path


def test_pod_names_map_to_services() -> None:
    assert pod_service("frontend-579b9bff58-t2dbm") == "frontend"
    assert pod_service("productcatalogservice-668d5f85fb-wckp8") == "productcatalogservice"
    assert pod_service("redis") == "redis"


async def test_faults_of_the_metric_day_are_scored(tmp_path: Path) -> None:
    data = shared_path("nezha")
    res = await evaluate(data, tmp_path / "nezha.db")
    assert res["evaluable"] == 24  # 2022-08-22: the day with metrics
    assert res["faults"] > res["evaluable"]  # 2022-08-23 has no metrics: reported, not scored
    assert res["caught"] >= 10  # measured 12/24 when written
    assert res["by_type"]["cpu_contention"][1] >= 6
    assert res["fault_free_alerts"] <= 2  # measured 0 in 7.75 fault-free hours


def test_a_missing_data_directory_is_exit_2(tmp_path: Path) -> None:
    assert cli(settings=load_settings(), data=tmp_path / "nope", as_json=True) == 2
    assert cli(settings=load_settings(), data=tmp_path, as_json=True) == 2
