/* handlers/http_web.c — GET / (the console page) and /cosyvoiced.js (the browser client), compiled in.
 *
 * The files come from web/ through build/gen/web_assets.c. They hold no data, so they are served
 * without an API key (the page sends the key the user types, kept in the browser's localStorage, with
 * every API call); web_ui = false turns them off (404). Every reply carries a strict
 * Content-Security-Policy (only this origin; no inline script or style, no eval, no framing, no forms),
 * X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer and Cache-Control: no-cache with an
 * ETag of the build, so a browser revalidates cheaply (304) and always runs the daemon's own version.
 */
#include "handlers/http_impl.h"
#include "handlers/web_assets.h"

#include "cv_git.h"

#define WEB_CSP                                                                                          \
	"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; media-src 'self' " \
	"blob:; "                                                                                        \
	"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const struct web_asset *web_find(const char *path)
{
	for (unsigned i = 0; i < web_asset_count; i++)
		if (strcmp(web_assets[i].path, path) == 0)
			return &web_assets[i];
	return NULL;
}

enum MHD_Result http_answer_web(struct conn *c)
{
	const struct web_asset *a = c->srv->cfg.web_ui ? web_find(c->path) : NULL;
	char etag[48];
	const char *inm;
	struct MHD_Response *r;
	int status = 200;

	if (!a)
		return http_send_error(
		    c, 404, NULL, c->srv->cfg.web_ui ? "no such file" : "the web console is off (web_ui)",
		    NULL, NULL);
	snprintf(etag, sizeof etag, "\"%s-%zx\"", CV_GIT, a->len);
	inm = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (inm && strcmp(inm, etag) == 0) {
		status = 304;
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	} else {
		r = MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
	}
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, a->ctype);
	MHD_add_response_header(r, "Content-Security-Policy", WEB_CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
	return http_queue(c, status, r);
}
