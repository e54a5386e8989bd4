"""The log settings' bounds: batching within 50 ms, pings at most 30 s apart."""

from __future__ import annotations

import pytest

from gpuctl_async.settings import SettingsError, load_settings


@pytest.mark.parametrize(("environ", "message"), [
    ({"GPUCTL_LOG_BATCH_WINDOW": "0.06"}, "log_batch_window"),
    ({"GPUCTL_LOG_HEARTBEAT": "31"}, "log_heartbeat"),
    ({"GPUCTL_LOG_QUEUE_LINES": "0"}, "log_queue_lines"),
])
def test_out_of_bounds_log_settings_are_refused(environ, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(config_file="config/gpuctl.yaml", environ=environ)
