/*
 * src/mcp/config.c - reads the YAML config file of `qreg mcp` (config.h)
 * with libyaml's document loader, which keeps the line of every node: each
 * error names the line and the key. Every scalar is read as text and typed
 * here, strictly (true/false only, numbers in the command line's syntax):
 * YAML's own guesses ("no" as false, "010" as octal) play no part.
 *
 * Owns nothing beyond each call; what it returns belongs to the caller.
 */
#include "mcp/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "cli/args.h"

/* A secret read from a file: at most this long (a password, a token). */
#define SECRET_MAX_BYTES 4096

typedef struct loader {
  const char *path;
  yaml_document_t *doc;
  char *error;
  size_t error_size;
  bool (*known_tool)(const char *name);
  bool has_secret_reference; /* password_env or password_file somewhere */
} loader_t;

__attribute__((format(printf, 4, 5))) static int fail(loader_t *l, const yaml_node_t *node,
                                                      const char *key, const char *fmt, ...) {
  char what[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (node)
    snprintf(l->error, l->error_size, "%s:%lu: %s: %s", l->path,
             (unsigned long)node->start_mark.line + 1, key, what);
  else
    snprintf(l->error, l->error_size, "%s: %s: %s", l->path, key, what);
  return -1;
}

static const char *scalar(const yaml_node_t *node) {
  return node && node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
}

/* key.sub into buf, for messages. */
static const char *key_path(char *buf, size_t size, const char *parent, const char *key) {
  snprintf(buf, size, "%s%s%s", parent ? parent : "", parent && *parent ? "." : "", key);
  return buf;
}

static int read_count(loader_t *l, const yaml_node_t *v, const char *key, uint64_t min,
                      uint64_t max, uint64_t *out) {
  const char *text = scalar(v);
  uint64_t n;
  if (!text || !qreg_cli_parse_count(text, &n) || n < min || n > max)
    return fail(l, v, key, "expected a whole number from %llu to %llu", (unsigned long long)min,
                (unsigned long long)max);
  *out = n;
  return 0;
}

static int read_seconds(loader_t *l, const yaml_node_t *v, const char *key, bool zero,
                        uint64_t max_ms, uint64_t *out) {
  const char *text = scalar(v);
  uint64_t ms;
  if (text && zero && strcmp(text, "0") == 0) {
    *out = 0;
    return 0;
  }
  if (!text || !qreg_cli_parse_seconds(text, &ms) || ms > max_ms)
    return fail(l, v, key, "expected seconds%s (30, 0.5), at most %llu", zero ? " (0 allowed)" : "",
                (unsigned long long)(max_ms / 1000));
  *out = ms;
  return 0;
}

static int read_bool(loader_t *l, const yaml_node_t *v, const char *key, int *out) {
  const char *text = scalar(v);
  if (text && strcmp(text, "true") == 0)
    *out = 1;
  else if (text && strcmp(text, "false") == 0)
    *out = 0;
  else
    return fail(l, v, key, "expected true or false");
  return 0;
}

static int read_text(loader_t *l, const yaml_node_t *v, const char *key, char **out) {
  const char *text = scalar(v);
  if (!text || !*text)
    return fail(l, v, key, "expected a non-empty string");
  free(*out);
  *out = strdup(text);
  return *out ? 0 : fail(l, v, key, "out of memory");
}

/* tools: {disabled: [names]} into a comma-separated list. */
static int read_tools(loader_t *l, const yaml_node_t *v, const char *parent, char **out) {
  char base[256], key[320];
  key_path(base, sizeof base, parent, "tools");
  if (!v || v->type != YAML_MAPPING_NODE)
    return fail(l, v, base, "expected a mapping (disabled: [tool, ...])");
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
    yaml_node_t *list = yaml_document_get_node(l->doc, p->value);
    if (!scalar(k) || strcmp(scalar(k), "disabled") != 0)
      return fail(l, k, key_path(key, sizeof key, base, scalar(k) ? scalar(k) : "?"),
                  "unknown key (tools takes disabled)");
    key_path(key, sizeof key, base, "disabled");
    if (!list || list->type != YAML_SEQUENCE_NODE)
      return fail(l, list, key, "expected a list of tool names");
    size_t size = 1;
    for (yaml_node_item_t *i = list->data.sequence.items.start; i < list->data.sequence.items.top;
         i++) {
      const char *name = scalar(yaml_document_get_node(l->doc, *i));
      if (!name || !l->known_tool(name))
        return fail(l, yaml_document_get_node(l->doc, *i), key, "'%s' is not a tool",
                    name ? name : "?");
      size += strlen(name) + 1;
    }
    char *joined = calloc(1, size);
    if (!joined)
      return fail(l, list, key, "out of memory");
    size_t used = 0;
    for (yaml_node_item_t *i = list->data.sequence.items.start; i < list->data.sequence.items.top;
         i++) {
      const char *name = scalar(yaml_document_get_node(l->doc, *i));
      size_t len = strlen(name);
      if (used > 0)
        joined[used++] = ',';
      memcpy(joined + used, name, len);
      used += len;
    }
    joined[used] = '\0';
    free(*out);
    *out = joined;
  }
  return 0;
}

/* A secret by reference: the environment variable's value or the file's
   first line. A file others can read is refused: it would not be a secret. */
static int read_secret(loader_t *l, const yaml_node_t *v, const char *key, bool from_file,
                       char **out) {
  const char *ref = scalar(v);
  if (!ref || !*ref)
    return fail(l, v, key, "expected %s", from_file ? "a file path" : "an environment variable");
  l->has_secret_reference = true;
  char *secret = NULL;
  if (!from_file) {
    const char *value = getenv(ref);
    if (!value || !*value)
      return fail(l, v, key, "the environment variable %s is not set", ref);
    secret = strdup(value);
  } else {
    struct stat st;
    FILE *f = fopen(ref, "r");
    if (!f)
      return fail(l, v, key, "cannot read %s: %s", ref, strerror(errno));
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
      fclose(f);
      return fail(l, v, key, "%s can be read by others (chmod 600 it)", ref);
    }
    char buf[SECRET_MAX_BYTES];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!buf[0])
      return fail(l, v, key, "%s is empty", ref);
    secret = strdup(buf);
  }
  if (!secret)
    return fail(l, v, key, "out of memory");
  free(*out);
  *out = secret;
  return 0;
}

/* Whether a database URL carries a password of its own: user:pass@ after
   the scheme, or a password= parameter. */
static bool url_has_password(const char *url) {
  if (strstr(url, "password=") || strstr(url, "password ="))
    return true;
  const char *scheme = strstr(url, "://");
  if (!scheme)
    return false;
  const char *start = scheme + 3;
  const char *end = start + strcspn(start, "/?#");
  const char *at = NULL;
  for (const char *p = start; p < end; p++)
    if (*p == '@')
      at = p;
  return at && memchr(start, ':', (size_t)(at - start)) != NULL;
}

/* options: {name: value} into "name=value" strings. */
static int read_options(loader_t *l, const yaml_node_t *v, const char *parent,
                        mcp_source_config_t *s) {
  char key[256];
  key_path(key, sizeof key, parent, "options");
  if (!v || v->type != YAML_MAPPING_NODE)
    return fail(l, v, key, "expected a mapping of driver options (name: value)");
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
    const char *name = scalar(yaml_document_get_node(l->doc, p->key));
    yaml_node_t *value_node = yaml_document_get_node(l->doc, p->value);
    const char *value = scalar(value_node);
    char sub[300];
    key_path(sub, sizeof sub, key, name ? name : "?");
    if (!name || !value)
      return fail(l, value_node, sub, "expected name: value");
    if (strstr(name, "password"))
      return fail(l, value_node, sub,
                  "secrets only by reference: use password_env or password_file");
    char **grown = realloc(s->options, (s->option_count + 1) * sizeof *grown);
    if (!grown)
      return fail(l, value_node, sub, "out of memory");
    s->options = grown;
    size_t size = strlen(name) + strlen(value) + 2;
    char *option = malloc(size);
    if (!option)
      return fail(l, value_node, sub, "out of memory");
    snprintf(option, size, "%s=%s", name, value);
    s->options[s->option_count++] = option;
  }
  return 0;
}

/* One source's mapping (or the defaults, is_source false). */
static int read_source(loader_t *l, const yaml_node_t *map, const char *parent, bool is_source,
                       mcp_source_config_t *s) {
  char key[300];
  if (!map || map->type != YAML_MAPPING_NODE)
    return fail(l, map, parent, "expected a mapping of settings");
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
    yaml_node_t *v = yaml_document_get_node(l->doc, p->value);
    const char *name = scalar(k);
    key_path(key, sizeof key, parent, name ? name : "?");
    int rc;
    if (!name)
      rc = fail(l, k, key, "expected a key");
    else if (is_source && strcmp(name, "name") == 0 && s->name)
      rc = 0; /* a source in a list names itself: read by the caller */
    else if (is_source && strcmp(name, "url") == 0)
      rc = read_text(l, v, key, &s->url);
    else if (is_source && strcmp(name, "description") == 0)
      rc = read_text(l, v, key, &s->description);
    else if (strcmp(name, "max_connections") == 0)
      rc = read_count(l, v, key, 1, 10000, &s->max_connections);
    else if (strcmp(name, "timeout") == 0)
      rc = read_seconds(l, v, key, false, (uint64_t)QREG_CLI_MAX_SECONDS * 1000, &s->timeout_ms);
    else if (strcmp(name, "ttl") == 0)
      rc = read_seconds(l, v, key, false, (uint64_t)QREG_CLI_MAX_SECONDS * 1000, &s->ttl_ms);
    else if (strcmp(name, "max_rows") == 0)
      rc = read_count(l, v, key, 1, UINT64_C(1000000000), &s->max_rows);
    else if (strcmp(name, "max_records") == 0)
      rc = read_count(l, v, key, 1, UINT64_C(10000000), &s->max_records);
    else if (strcmp(name, "allow_writes") == 0)
      rc = read_bool(l, v, key, &s->allow_writes);
    else if (strcmp(name, "read_only") == 0) {
      int read_only = 0;
      rc = read_bool(l, v, key, &read_only);
      s->allow_writes = !read_only;
    } else if (is_source && strcmp(name, "password_env") == 0)
      rc = read_secret(l, v, key, false, &s->password);
    else if (is_source && strcmp(name, "password_file") == 0)
      rc = read_secret(l, v, key, true, &s->password);
    else if (strcmp(name, "password") == 0)
      rc = fail(l, v, key,
                "secrets only by reference: password_env: VARIABLE or password_file: PATH");
    else if (strcmp(name, "options") == 0)
      rc = read_options(l, v, parent, s);
    else if (strcmp(name, "tools") == 0)
      rc = read_tools(l, v, parent, &s->disabled_tools);
    else
      rc = fail(l, k, key,
                "unknown key (a %s takes %smax_connections, timeout, ttl, max_rows, "
                "max_records, allow_writes, read_only, %soptions, tools)",
                is_source ? "source" : "defaults section", is_source ? "url, description, " : "",
                is_source ? "password_env, password_file, " : "");
    if (rc)
      return rc;
  }
  if (is_source && !s->url)
    return fail(l, map, parent, "url: required (sqlite:PATH, postgresql://...)");
  if (is_source && url_has_password(s->url))
    return fail(l, map, parent,
                "url: holds a password; secrets only by reference: put it in password_env "
                "or password_file");
  return 0;
}

static bool valid_source_name(const char *name) {
  if (!*name || strlen(name) > 64)
    return false;
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '_' || *p == '-'))
      return false;
  return true;
}

static int read_root(loader_t *l, const yaml_node_t *root, mcp_config_t *c) {
  if (!root || root->type != YAML_MAPPING_NODE)
    return fail(l, root, "(top)", "expected a mapping with sources (and defaults, tools, wait)");
  const yaml_node_t *sources = NULL;
  for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
       p++) {
    yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
    yaml_node_t *v = yaml_document_get_node(l->doc, p->value);
    const char *name = scalar(k);
    int rc = 0;
    if (!name)
      rc = fail(l, k, "(top)", "expected a key");
    else if (strcmp(name, "sources") == 0)
      sources = v;
    else if (strcmp(name, "defaults") == 0)
      rc = read_source(l, v, "defaults", false, &c->defaults);
    else if (strcmp(name, "tools") == 0)
      rc = read_tools(l, v, "", &c->defaults.disabled_tools);
    else if (strcmp(name, "wait") == 0) {
      rc = read_seconds(l, v, name, true, 50000, &c->wait_ms);
      c->wait_set = rc == 0;
    } else if (strcmp(name, "max_response_bytes") == 0)
      rc = read_count(l, v, name, 4096, (uint64_t)1 << 30, &c->max_response_bytes);
    else if (strcmp(name, "max_message_bytes") == 0)
      rc = read_count(l, v, name, 1024, (uint64_t)1 << 30, &c->max_message_bytes);
    else
      rc = fail(l, k, name,
                "unknown key (the file takes sources, defaults, tools, wait, "
                "max_response_bytes, max_message_bytes)");
    if (rc)
      return rc;
  }
  /* A mapping of names to settings, or a list of settings each with its
     name. */
  bool listed = sources && sources->type == YAML_SEQUENCE_NODE;
  size_t count = 0;
  if (listed)
    count = (size_t)(sources->data.sequence.items.top - sources->data.sequence.items.start);
  else if (sources && sources->type == YAML_MAPPING_NODE)
    count = (size_t)(sources->data.mapping.pairs.top - sources->data.mapping.pairs.start);
  if (count == 0)
    return fail(l, sources ? sources : root, "sources",
                "required: a mapping of source names to their settings (url: ...), or a list "
                "of settings each with a name");
  c->sources = calloc(count, sizeof *c->sources);
  if (!c->sources)
    return fail(l, sources, "sources", "out of memory");
  for (size_t index = 0; index < count; index++) {
    yaml_node_t *k = NULL;
    yaml_node_t *value = NULL;
    if (listed) {
      value = yaml_document_get_node(l->doc, sources->data.sequence.items.start[index]);
      if (value && value->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *q = value->data.mapping.pairs.start;
             q < value->data.mapping.pairs.top; q++) {
          const char *field = scalar(yaml_document_get_node(l->doc, q->key));
          if (field && strcmp(field, "name") == 0)
            k = yaml_document_get_node(l->doc, q->value);
        }
      }
      if (!k)
        return fail(l, value, "sources[]", "each source in a list needs a name");
    } else {
      yaml_node_pair_t *p = &sources->data.mapping.pairs.start[index];
      k = yaml_document_get_node(l->doc, p->key);
      value = yaml_document_get_node(l->doc, p->value);
    }
    const char *name = scalar(k);
    char key[128];
    snprintf(key, sizeof key, "sources.%.64s", name ? name : "?");
    if (!name || !valid_source_name(name))
      return fail(l, k, key, "a source name is 1 to 64 letters, digits, '_' or '-'");
    for (size_t i = 0; i < c->source_count; i++)
      if (c->sources[i].name && strcmp(c->sources[i].name, name) == 0)
        return fail(l, k, key, "named twice");
    char *copy = strdup(name);
    if (!copy)
      return fail(l, k, key, "out of memory");
    mcp_source_config_t *s = &c->sources[c->source_count++];
    s->allow_writes = -1;
    s->name = copy;
    int rc = read_source(l, value, key, true, s);
    if (rc)
      return rc;
  }
  return 0;
}

int mcp_config_load(const char *path, bool (*known_tool)(const char *name), mcp_config_t *config,
                    char *error, size_t error_size) {
  memset(config, 0, sizeof *config);
  config->defaults.allow_writes = -1;
  loader_t l = {.path = path, .error = error, .error_size = error_size, .known_tool = known_tool};
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(error, error_size, "%s: cannot read: %s", path, strerror(errno));
    return -1;
  }
  struct stat st;
  bool readable_by_others = fstat(fileno(f), &st) == 0 && (st.st_mode & S_IROTH) != 0;
  yaml_parser_t parser;
  yaml_document_t doc;
  if (!yaml_parser_initialize(&parser)) {
    fclose(f);
    snprintf(error, error_size, "%s: out of memory", path);
    return -1;
  }
  yaml_parser_set_input_file(&parser, f);
  int rc = 0;
  if (!yaml_parser_load(&parser, &doc)) {
    snprintf(error, error_size, "%s:%lu: %s%s%s", path,
             (unsigned long)(parser.problem_mark.line + 1),
             parser.problem ? parser.problem : "not valid YAML", parser.context ? " " : "",
             parser.context ? parser.context : "");
    yaml_parser_delete(&parser);
    fclose(f);
    return -1;
  }
  l.doc = &doc;
  rc = read_root(&l, yaml_document_get_root_node(&doc), config);
  if (rc == 0 && l.has_secret_reference && readable_by_others) {
    snprintf(error, error_size,
             "%s: refers to secrets (password_env, password_file) and can be read by others: "
             "chmod o-r it",
             path);
    rc = -1;
  }
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  fclose(f);
  if (rc)
    mcp_config_free(config);
  return rc;
}

static void source_free(mcp_source_config_t *s) {
  free(s->name);
  free(s->description);
  free(s->url);
  if (s->password) {
    /* Not left lying in freed memory. */
    volatile char *p = s->password;
    while (*p)
      *p++ = '\0';
    free(s->password);
  }
  free(s->disabled_tools);
  for (size_t i = 0; i < s->option_count; i++)
    free(s->options[i]);
  free(s->options);
}

void mcp_config_free(mcp_config_t *config) {
  source_free(&config->defaults);
  for (size_t i = 0; i < config->source_count; i++)
    source_free(&config->sources[i]);
  free(config->sources);
  memset(config, 0, sizeof *config);
}
