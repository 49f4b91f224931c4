"""A real MCP server (the official Python SDK, `mcp` 2.x) whose tool list changes while it runs:
`grow` adds a tool and sends notifications/tools/list_changed. Used by tests/tests/e2e/mcp.rs."""

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("growing")


@server.tool()
async def grow(name: str, ctx: Context) -> str:
    """Adds a tool called `name` that answers who it is."""

    def added() -> str:
        return f"I am {name}"

    server.add_tool(added, name=name, description="Added while the server runs.")
    await ctx.notify_tools_changed()
    return f"added {name}"


if __name__ == "__main__":
    server.run("stdio")
