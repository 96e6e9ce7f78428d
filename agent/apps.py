from django.apps import AppConfig


class AgentConfig(AppConfig):
    name = "agent"
    verbose_name = "Agent surface"

    def ready(self):
        from agent.operations import collect

        # Each app's operations.py registers its agent-facing operations (REST and MCP).
        collect()
