import socket

from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings


class DispatcherSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="DISPATCHER_", extra="ignore", populate_by_name=True
    )

    http_port: int = 8083
    group_id: str = "dispatcher"
    # Names the Kafka transactional.id: stable across restarts of one instance
    # (so a restarted instance fences its zombie), distinct between instances.
    instance_id: str = socket.gethostname()
    max_batch: int = 500
    fence_timeout_seconds: float = 10.0
    frequency_limit: int = 20
    frequency_window_seconds: int = 86_400
