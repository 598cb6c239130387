/*
 * src/cli/main.c - the qreg program's entry point: global options (--help,
 * --version) and dispatch to a subcommand (query.c, the MCP server in
 * src/mcp/, the HTTP server in src/http/). Owns nothing; each subcommand owns what it opens.
 */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "http/http.h"
#include "mcp/mcp.h"
#include "qreg.h"

static void print_usage(FILE *out) {
  fputs("Usage: qreg COMMAND [ARGS...]\n"
        "\n"
        "qreg is an asynchronous SQL query registry: queries run in the background\n"
        "against a database, are tracked by id, can be polled, paged,\n"
        "canceled and listed, and every database connection is released exactly once.\n"
        "\n"
        "Commands:\n"
        "  query           run one SQL statement and print its result\n"
        "                  (qreg query --db sqlite:demo.db \"SELECT 1\")\n"
        "  mcp             serve the registry to an MCP client over stdio\n"
        "  serve           serve the registry over HTTP (statement API, metrics)\n"
        "  help [COMMAND]  show this help, or the help of COMMAND\n"
        "\n"
        "Options:\n"
        "  -h, --help      show this help\n"
        "  -V, --version   print the version\n"
        "\n"
        "Database URLs, and each database's options:\n",
        out);
  fputs(qreg_drivers_help(), out);
  fputs("\nRun 'qreg COMMAND --help' for the options of a command.\n", out);
}

static int unknown_command(const char *name) {
  char shown[64];
  fprintf(stderr, "qreg: unknown command '%s'\nTry 'qreg --help'.\n",
          qreg_cli_shown_argument(name, shown, sizeof shown));
  return QREG_CLI_EXIT_USAGE;
}

/* `qreg help [COMMAND]`. */
static int help_command(int argc, char **argv) {
  if (argc < 2) {
    print_usage(stdout);
    return QREG_CLI_EXIT_OK;
  }
  if (strcmp(argv[1], "query") == 0) {
    qreg_cli_query_usage(stdout);
    return QREG_CLI_EXIT_OK;
  }
  if (strcmp(argv[1], "mcp") == 0) {
    char mcp[] = "mcp";
    char help[] = "--help";
    char *mcp_argv[] = {mcp, help, NULL};
    return qreg_mcp_main(2, mcp_argv);
  }
  if (strcmp(argv[1], "serve") == 0) {
    char serve[] = "serve";
    char help[] = "--help";
    char *serve_argv[] = {serve, help, NULL};
    return qreg_http_main(2, serve_argv);
  }
  return unknown_command(argv[1]);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    print_usage(stderr);
    return QREG_CLI_EXIT_USAGE;
  }
  const char *command = argv[1];
  if (strcmp(command, "-h") == 0 || strcmp(command, "--help") == 0)
    return help_command(1, argv + 1);
  if (strcmp(command, "-V") == 0 || strcmp(command, "--version") == 0) {
    printf("qreg %s\n", QREG_VERSION_STRING);
    return QREG_CLI_EXIT_OK;
  }
  if (strcmp(command, "help") == 0)
    return help_command(argc - 1, argv + 1);
  if (strcmp(command, "query") == 0)
    return qreg_cli_query_main(argc - 1, argv + 1);
  if (strcmp(command, "mcp") == 0)
    return qreg_mcp_main(argc - 1, argv + 1);
  if (strcmp(command, "serve") == 0)
    return qreg_http_main(argc - 1, argv + 1);
  if (command[0] == '-') {
    char shown[64];
    fprintf(stderr, "qreg: unknown option '%s'\nTry 'qreg --help'.\n",
            qreg_cli_shown_argument(command, shown, sizeof shown));
    return QREG_CLI_EXIT_USAGE;
  }
  return unknown_command(command);
}
