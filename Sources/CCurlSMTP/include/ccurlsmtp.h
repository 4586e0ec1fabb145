#ifndef CCURLSMTP_H
#define CCURLSMTP_H
#include <stddef.h>

/// Sends one message over SMTP with libcurl. All of libcurl's variadic API stays in C.
/// url: smtp://host:port or smtps://host:port; user/pass may be NULL (no AUTH);
/// require_tls: 1 = STARTTLS required on smtp://; insecure: 1 = do not verify the server
/// certificate (tests only); ca_file may be NULL. Returns the CURLcode (0 = sent); on failure
/// errbuf (at least 256 bytes) holds libcurl's message.
int pcl_smtp_send(const char *url, const char *user, const char *pass,
                  const char *from, const char *const *recipients, int recipient_count,
                  const char *payload, size_t payload_len,
                  long timeout_seconds, int require_tls, int insecure, const char *ca_file,
                  char *errbuf);

/// curl_global_init, once per process.
void pcl_curl_global_init(void);

#endif
