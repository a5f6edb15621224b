/* The metrics endpoint: a minimal HTTP/1.0 server for one document.
 *
 * GET /metrics (or /) answers 200 with the text render() writes, in
 * Prometheus's text format; anything else gets 404 or 400. One thread,
 * one connection at a time, a short read deadline: scrapers are few and
 * a slow one cannot hold the server. Off unless --metrics is given. */
#ifndef USBIP_NOTIFY_SERVER_METRICS_HTTP_H
#define USBIP_NOTIFY_SERVER_METRICS_HTTP_H

#include "common/strbuf.h"

#define METRICS_HTTP_MAX_REQUEST 4096
#define METRICS_HTTP_TIMEOUT_MS 3000

/* Writes the document; runs on the endpoint's thread. */
typedef void (*metrics_render_fn)(void *ctx, struct strbuf *out);

struct metrics_http;

/* addr_port: "HOST:PORT", "[V6]:PORT" or ":PORT" (every address); port 0
 * picks one (see metrics_http_port). Returns 0 or -errno. */
int metrics_http_start(const char *addr_port, metrics_render_fn render, void *ctx,
		       struct metrics_http **out);
int metrics_http_port(const struct metrics_http *h);
void metrics_http_stop(struct metrics_http *h);

#endif
