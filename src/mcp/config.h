/*
 * src/mcp/config.h - `qreg mcp --config PATH`: the YAML file that names the
 * sources one server serves (each a database URL with its options) and the
 * server's defaults and tool switches. Loading only: server.c lays the
 * command line and the environment over what this reads, opens a registry
 * per source and hands them to the message handler.
 *
 * Every error names the file, the line and the key ("qreg.yaml:7:
 * sources.shop.timeout: expected seconds ..."). Secrets appear only by
 * reference (password_env, password_file), and a file that refers to any
 * must not be readable by others.
 *
 * Owns everything it returns, until mcp_config_free().
 */
#ifndef QREG_MCP_CONFIG_H
#define QREG_MCP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One source's settings (or the defaults every source starts from). 0 / NULL /
   -1: not set here. */
typedef struct mcp_source_config {
  char *name;        /* owned; sources only */
  char *description; /* owned, may be NULL */
  char *url;         /* owned; sources only (required) */
  char *password;    /* owned: read from password_env or password_file */
  uint64_t max_connections;
  uint64_t timeout_ms;
  uint64_t ttl_ms;
  uint64_t max_rows;
  uint64_t max_records;
  int allow_writes;     /* -1 unset, 0, 1 */
  char *disabled_tools; /* owned: comma-separated tool names */
  char **options;       /* owned: driver options "name=value" */
  size_t option_count;
} mcp_source_config_t;

typedef struct mcp_config {
  mcp_source_config_t defaults;
  mcp_source_config_t *sources; /* owned, in the file's order */
  size_t source_count;
  uint64_t wait_ms; /* wait_set: the file's `wait` */
  bool wait_set;
  uint64_t max_response_bytes; /* 0: not set */
  uint64_t max_message_bytes;
} mcp_config_t;

/* Reads the file at path into *config. 0, or -1 with a one-line message
   ("PATH:LINE: KEY: what is wrong") in error. known_tool() says whether a
   name is a tool (for tools.disabled). */
int mcp_config_load(const char *path, bool (*known_tool)(const char *name), mcp_config_t *config,
                    char *error, size_t error_size);
void mcp_config_free(mcp_config_t *config);

#endif /* QREG_MCP_CONFIG_H */
