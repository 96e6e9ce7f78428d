from django.apps import AppConfig


class AgentConfig(AppConfig):
    name = "agent"
    verbose_name = "Agent surface"

    def ready(self):
        from agent import receivers
        from agent.operations import collect

        receivers.connect()  # a plan or grant change tells the MCP sessions to list their tools again

        # Every operations.py and *_operations.py of the project's apps declares its operations (REST and MCP).
        collect()
