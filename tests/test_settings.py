"""Settings resolve from defaults, then a file, then LAKEPULSE__SECTION__KEY variables."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lakepulse.settings import SettingsError, load_settings

pytestmark = pytest.mark.platform


def test_defaults_are_the_local_laptop_deployment():
    settings = load_settings(environ={})
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.hdfs.fs_uri == "hdfs://127.0.0.1:8020"
    assert settings.airflow.url == "http://127.0.0.1:8080"
    assert settings.mlflow.tracking_uri == "http://127.0.0.1:5000"
    assert settings.spark.master == "local[2]"
    assert settings.paths.data_dir.name == ".lakepulse"


def test_file_overrides_defaults_and_environment_overrides_file(tmp_path: Path):
    config = tmp_path / "lakepulse.toml"
    config.write_text(
        '[kafka]\nbootstrap_servers = "broker-1:9092,broker-2:9092"\nevents_partitions = 12\n'
        '[spark]\nmaster = "yarn"\n'
    )
    env = {"LAKEPULSE__SPARK__MASTER": "spark://spark-master:7077"}
    settings = load_settings(config_file=config, environ=env)
    assert settings.kafka.bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert settings.kafka.events_partitions == 12
    assert settings.spark.master == "spark://spark-master:7077"


def test_environment_values_are_converted_to_the_declared_types():
    env = {"LAKEPULSE__KAFKA__EVENTS_PARTITIONS": "6", "LAKEPULSE__HDFS__MANAGED": "false",
           "LAKEPULSE__PRODUCER__SPEEDUP": "1500.5"}  # fmt: skip
    settings = load_settings(environ=env)
    assert settings.kafka.events_partitions == 6
    assert settings.hdfs.managed is False
    assert settings.producer.speedup == 1500.5


def test_settings_are_frozen():
    settings = load_settings(environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.kafka.bootstrap_servers = "elsewhere:9092"  # type: ignore[misc]


def test_a_misspelled_key_names_the_keys_that_were_tried():
    with pytest.raises(SettingsError) as error:
        load_settings(environ={"LAKEPULSE__KAFKA__BOOTSTRAP_SERVER": "x:9092"})
    message = str(error.value)
    assert "LAKEPULSE__KAFKA__BOOTSTRAP_SERVER" in message
    assert "LAKEPULSE__KAFKA__BOOTSTRAP_SERVERS" in message  # among the keys tried


def test_a_bad_value_says_which_setting_and_where_it_came_from():
    with pytest.raises(SettingsError, match=r"kafka\.events_partitions.*LAKEPULSE__KAFKA__EVENTS"):
        load_settings(environ={"LAKEPULSE__KAFKA__EVENTS_PARTITIONS": "many"})


def test_an_unknown_section_is_refused(tmp_path: Path):
    config = tmp_path / "lakepulse.toml"
    config.write_text("[kafak]\nbootstrap_servers = 'x'\n")
    with pytest.raises(SettingsError, match="unknown settings section 'kafak'"):
        load_settings(config_file=config, environ={})


def test_a_port_offset_moves_every_listening_port_and_nothing_else():
    from lakepulse.settings import offset_ports_environment

    moved = load_settings(environ=offset_ports_environment(20000))
    default = load_settings(environ={})
    assert moved.kafka.bootstrap_servers == "127.0.0.1:29092"
    assert moved.hdfs.namenode_http_port == default.hdfs.namenode_http_port + 20000
    assert moved.airflow.port == 28080 and moved.mlflow.port == 25000
    assert moved.spark.ui_port == 0  # off stays off
