/*
 * src/mcp/mcp.h - entry point of the MCP front end: `qreg mcp`, an MCP server
 * on stdio. Knows only include/qreg.h; the CLI calls qreg_mcp_main().
 */
#ifndef QREG_MCP_MCP_H
#define QREG_MCP_MCP_H

/* Runs `qreg mcp ARGS...` (argv[0] is "mcp"); returns the process exit code. */
int qreg_mcp_main(int argc, char **argv);

#endif /* QREG_MCP_MCP_H */
