/*
 * src/http/auth.c - the bearer tokens of `qreg serve`: reading the token
 * file (mode 0600 or refused; plain tokens or sha256:<hex> hashes) and
 * checking an Authorization header against it in constant time. Only the
 * SHA-256 digests are kept in memory; no message ever shows a token.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/http_internal.h"

#define TOKEN_MIN_LEN 16
#define TOKEN_MAX_LEN 4096
#define TOKEN_FILE_MAX ((off_t)1 << 20)

static bool sha256(const char *data, size_t len, unsigned char out[HTTP_TOKEN_DIGEST_LEN]) {
  unsigned int out_len = 0;
  return EVP_Digest(data, len, out, &out_len, EVP_sha256(), NULL) == 1 &&
         out_len == HTTP_TOKEN_DIGEST_LEN;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* One line (trimmed) into a digest; false with a message naming the line. */
static bool parse_line(const char *line, size_t len, size_t line_no,
                       unsigned char digest[HTTP_TOKEN_DIGEST_LEN], char *err, size_t err_size) {
  if (len > 7 && strncasecmp(line, "sha256:", 7) == 0) {
    const char *hex = line + 7;
    if (len - 7 != (size_t)2 * HTTP_TOKEN_DIGEST_LEN) {
      snprintf(err, err_size, "line %zu: a sha256: hash needs exactly 64 hex digits", line_no);
      return false;
    }
    for (size_t i = 0; i < HTTP_TOKEN_DIGEST_LEN; i++) {
      int high = hex_digit(hex[2 * i]);
      int low = hex_digit(hex[2 * i + 1]);
      if (high < 0 || low < 0) {
        snprintf(err, err_size, "line %zu: a sha256: hash needs exactly 64 hex digits", line_no);
        return false;
      }
      digest[i] = (unsigned char)(high * 16 + low);
    }
    return true;
  }
  if (len < TOKEN_MIN_LEN || len > TOKEN_MAX_LEN) {
    snprintf(err, err_size, "line %zu: a token must have %d to %d characters", line_no,
             TOKEN_MIN_LEN, TOKEN_MAX_LEN);
    return false;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)line[i];
    if (c <= ' ' || c >= 0x7f) {
      snprintf(err, err_size,
               "line %zu: a token is printable ASCII without spaces (RFC 6750 b64token)", line_no);
      return false;
    }
  }
  if (!sha256(line, len, digest)) {
    snprintf(err, err_size, "SHA-256 is not available");
    return false;
  }
  return true;
}

int http_tokens_load(const char *path, http_tokens_t *out, char *err, size_t err_size) {
  memset(out, 0, sizeof *out);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    snprintf(err, err_size, "cannot open it: %s", strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, err_size, "not a regular file");
    close(fd);
    return -1;
  }
  if (st.st_mode & 077) {
    snprintf(err, err_size, "its mode is %04o: others may read it; make it 0600 (chmod 600)",
             (unsigned)(st.st_mode & 07777));
    close(fd);
    return -1;
  }
  if (st.st_size > TOKEN_FILE_MAX) {
    snprintf(err, err_size, "larger than 1 MiB");
    close(fd);
    return -1;
  }
  size_t size = (size_t)st.st_size;
  char *text = calloc(size + 1, 1);
  size_t got = 0;
  while (text && got < size) {
    ssize_t n = read(fd, text + got, size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fd);
  if (!text) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  text[got] = '\0';
  size_t lines = 1;
  for (size_t i = 0; i < got; i++)
    lines += text[i] == '\n';
  out->digests = calloc(lines, sizeof *out->digests);
  int rc = out->digests ? 0 : -1;
  if (rc)
    snprintf(err, err_size, "out of memory");
  size_t line_no = 0;
  for (char *line = text; rc == 0 && line && line <= text + got;) {
    char *end = memchr(line, '\n', (size_t)(text + got - line));
    char *next = end ? end + 1 : NULL;
    if (!end)
      end = text + got;
    line_no++;
    while (line < end && isspace((unsigned char)*line))
      line++;
    while (end > line && isspace((unsigned char)end[-1]))
      end--;
    if (end > line && *line != '#') {
      if (parse_line(line, (size_t)(end - line), line_no, out->digests[out->count], err, err_size))
        out->count++;
      else
        rc = -1;
    }
    line = next;
  }
  OPENSSL_cleanse(text, got);
  free(text);
  if (rc == 0 && out->count == 0) {
    snprintf(err, err_size, "holds no token");
    rc = -1;
  }
  if (rc)
    http_tokens_free(out);
  return rc;
}

void http_tokens_free(http_tokens_t *tokens) {
  if (tokens->digests)
    OPENSSL_cleanse(tokens->digests, tokens->count * sizeof *tokens->digests);
  free(tokens->digests);
  tokens->digests = NULL;
  tokens->count = 0;
}

bool http_tokens_check(const http_tokens_t *tokens, const char *authorization) {
  if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
    return false;
  const char *token = authorization + 7;
  while (*token == ' ')
    token++;
  size_t len = strlen(token);
  while (len > 0 && token[len - 1] == ' ')
    len--;
  if (len == 0 || len > TOKEN_MAX_LEN)
    return false;
  unsigned char digest[HTTP_TOKEN_DIGEST_LEN];
  if (!sha256(token, len, digest))
    return false;
  /* Every digest is compared, whatever the first one said. */
  int matches = 0;
  for (size_t i = 0; i < tokens->count; i++)
    matches |= CRYPTO_memcmp(digest, tokens->digests[i], HTTP_TOKEN_DIGEST_LEN) == 0;
  return matches != 0;
}
