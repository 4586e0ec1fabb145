#include "ccurlsmtp.h"
#include <curl/curl.h>
#include <string.h>
#include <pthread.h>

struct upload { const char *data; size_t len; size_t pos; };

static size_t read_payload(char *buffer, size_t size, size_t nitems, void *userdata) {
    struct upload *u = (struct upload *)userdata;
    size_t room = size * nitems;
    size_t left = u->len - u->pos;
    size_t n = left < room ? left : room;
    memcpy(buffer, u->data + u->pos, n);
    u->pos += n;
    return n;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }
void pcl_curl_global_init(void) { pthread_once(&once, global_init); }

int pcl_smtp_send(const char *url, const char *user, const char *pass,
                  const char *from, const char *const *recipients, int recipient_count,
                  const char *payload, size_t payload_len,
                  long timeout_seconds, int require_tls, int insecure, const char *ca_file,
                  char *errbuf) {
    pcl_curl_global_init();
    errbuf[0] = 0;
    CURL *curl = curl_easy_init();
    if (!curl) { strncpy(errbuf, "curl_easy_init failed", 255); return CURLE_FAILED_INIT; }
    struct curl_slist *rcpt = NULL;
    for (int i = 0; i < recipient_count; i++) rcpt = curl_slist_append(rcpt, recipients[i]);
    struct upload u = { payload, payload_len, 0 };
    curl_easy_setopt(curl, CURLOPT_URL, url);
    if (user) curl_easy_setopt(curl, CURLOPT_USERNAME, user);
    if (pass) curl_easy_setopt(curl, CURLOPT_PASSWORD, pass);
    curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_payload);
    curl_easy_setopt(curl, CURLOPT_READDATA, &u);
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)payload_len);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout_seconds);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, timeout_seconds);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    if (require_tls) curl_easy_setopt(curl, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    else curl_easy_setopt(curl, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
    if (insecure) {
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (ca_file) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK && errbuf[0] == 0) strncpy(errbuf, curl_easy_strerror(rc), 255);
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(curl);
    return (int)rc;
}
