/* The device list report: see device_report.h. */
#include "server/device_report.h"

#include <stdio.h>
#include <string.h>

static const struct export_view *find_view(const struct export_view *views, size_t n,
					   const char *busid)
{
	for (size_t i = 0; views && i < n; i++) {
		if (strcmp(views[i].info.busid, busid) == 0)
			return &views[i];
	}
	return NULL;
}

/* One device, decided. */
struct row {
	const struct bk_device_info *d;
	enum export_verdict verdict;
	const char *rule;          /* NULL when no rule decided */
	const struct export_view *view;
};

static struct row decide(const struct bk_device_info *d, const struct export_filter *f,
			 const struct export_view *views, size_t nviews)
{
	int rule = -1;
	struct row r = { .d = d };
	r.verdict = export_filter_explain(f, d, &rule);
	r.rule = rule >= 0 ? f->rules[rule].text : NULL;
	r.view = find_view(views, nviews, d->busid);
	return r;
}

static void json_row(struct json_writer *w, const struct row *r, bool live)
{
	char hex[8];
	json_obj_begin(w);
	json_key(w, "busid");
	json_str(w, r->d->busid);
	json_key(w, "vid");
	snprintf(hex, sizeof(hex), "%04x", r->d->idVendor);
	json_str(w, hex);
	json_key(w, "pid");
	snprintf(hex, sizeof(hex), "%04x", r->d->idProduct);
	json_str(w, hex);
	json_key(w, "manufacturer");
	json_str(w, r->d->manufacturer);
	json_key(w, "product");
	json_str(w, r->d->product);
	json_key(w, "serial");
	json_str(w, r->d->serial);
	json_key(w, "speed");
	json_str(w, usbip_speed_name(r->d->speed));
	json_key(w, "exported");
	json_bool(w, export_verdict_offered(r->verdict));
	json_key(w, "reason");
	json_str(w, export_verdict_name(r->verdict));
	json_key(w, "rule");
	json_str(w, r->rule);
	json_key(w, "held");
	if (live)
		json_bool(w, r->view && r->view->held);
	else
		json_null(w);
	json_key(w, "held_by");
	json_str(w, r->view && r->view->held && r->view->held_by[0] ? r->view->held_by : NULL);
	json_obj_end(w);
}

/* "exported", "held by 10.0.0.2:40000", "hidden: deny 1-1", ... */
static void state_text(const struct row *r, bool live, char *buf, size_t n)
{
	switch (r->verdict) {
	case EXPORT_OFFERED:
	case EXPORT_OFFERED_ALLOW:
		if (live && r->view && r->view->held)
			snprintf(buf, n, "held by %s",
				 r->view->held_by[0] ? r->view->held_by : "a client");
		else if (r->verdict == EXPORT_OFFERED_ALLOW)
			snprintf(buf, n, "exported (allow %s)", r->rule);
		else
			snprintf(buf, n, "exported");
		return;
	case EXPORT_HIDDEN_VHCI:
		snprintf(buf, n, "hidden: on vhci_hcd (an imported copy; --include-vhci)");
		return;
	case EXPORT_HIDDEN_DENY:
		snprintf(buf, n, "hidden: deny %s", r->rule);
		return;
	case EXPORT_HIDDEN_NO_ALLOW:
		snprintf(buf, n, "hidden: no allow rule matches");
		return;
	}
	snprintf(buf, n, "?");
}

static void text_row(struct strbuf *out, const struct row *r, bool live)
{
	char state[EXPORT_RULE_TEXT_SIZE + 64];
	char name[2 * BK_STRING_SIZE + 4];
	state_text(r, live, state, sizeof(state));
	if (r->d->manufacturer[0] && r->d->product[0])
		snprintf(name, sizeof(name), "%s %s", r->d->manufacturer, r->d->product);
	else
		snprintf(name, sizeof(name), "%s", r->d->product[0] ? r->d->product
								: r->d->manufacturer);
	sb_printf(out, "%-10s %04x:%04x  %-10s %-40s %s\n", r->d->busid, r->d->idVendor,
		  r->d->idProduct, usbip_speed_name(r->d->speed), name[0] ? name : "-", state);
}

void device_report(struct strbuf *out, bool json, const struct bk_device_info *devs, size_t n,
		   const struct export_filter *f, const struct export_view *views,
		   size_t nviews)
{
	bool live = views != NULL;
	if (json) {
		struct json_writer w;
		json_init(&w, out);
		json_obj_begin(&w);
		json_key(&w, "source");
		json_str(&w, live ? "server" : "local");
		json_key(&w, "devices");
		json_arr_begin(&w);
		for (size_t i = 0; i < n; i++) {
			struct row r = decide(&devs[i], f, views, nviews);
			json_row(&w, &r, live);
		}
		json_arr_end(&w);
		json_obj_end(&w);
		sb_append(out, "\n", 1);
		return;
	}
	if (n == 0) {
		sb_printf(out, "no USB devices found%s\n",
			  live ? "" : " (or no permission to read them: see the README)");
		return;
	}
	sb_printf(out, "%-10s %-9s  %-10s %-40s %s\n", "BUSID", "VID:PID", "SPEED", "DEVICE",
		  "STATE");
	for (size_t i = 0; i < n; i++) {
		struct row r = decide(&devs[i], f, views, nviews);
		text_row(out, &r, live);
	}
}
