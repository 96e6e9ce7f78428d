from django.apps import AppConfig


class AgentConfig(AppConfig):
    name = "agent"
    verbose_name = "Agent surface"

    def ready(self):
        from agent import receivers  # noqa: F401 (connects the grant-change receivers)
        from agent.operations import collect

        # Every operations.py and *_operations.py of the project's apps declares its operations (REST and MCP).
        collect()
