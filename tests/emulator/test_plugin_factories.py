"""The plugin's factory fixtures: connections with chosen extras, and emulators with their own timings."""

from __future__ import annotations

from collections.abc import Callable

from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator

URLS = [f"https://example.com/p/{i}.jpg" for i in range(10)]


def test_phota_connection_sets_extras_and_targets(
    phota_emulator: PhotaEmulator,
    phota_connection: Callable[..., str],
    phota_emulator_factory: Callable[..., PhotaEmulator],
) -> None:
    assert phota_connection(max_attempts=2, retry_wait=0.01) == "phota_default"
    settings = PhotaHook().settings
    assert settings.base_url == phota_emulator.base_url
    assert settings.retry.max_attempts == 2
    assert settings.retry.initial_wait == 0.01

    other = phota_emulator_factory(training_seconds=50.0, job_seconds=50.0)
    assert phota_connection("phota_other", emulator=other, api_key="wrong") == "phota_other"
    other_settings = PhotaHook("phota_other").settings
    assert other_settings.base_url == other.base_url != phota_emulator.base_url
    assert other_settings.api_key == "wrong"


def test_phota_emulator_factory_reuses_one_server_per_setting_and_resets_once_per_test(
    phota_emulator_factory: Callable[..., PhotaEmulator], phota_connection: Callable[..., str]
) -> None:
    slow = phota_emulator_factory(training_seconds=3600.0, job_seconds=3600.0)
    assert slow.training_seconds == 3600.0
    phota_connection(emulator=slow)
    profile_id = PhotaHook().create_profile(URLS)
    assert slow.profile_status(profile_id) == "VALIDATING"  # nothing finishes unless the test moves the clock

    again = phota_emulator_factory(training_seconds=3600.0, job_seconds=3600.0)
    assert again is slow
    assert profile_id in again.profiles  # not reset a second time within the same test
    assert phota_emulator_factory(training_seconds=1.0, job_seconds=3600.0) is not slow
