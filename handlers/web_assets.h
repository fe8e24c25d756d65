/* handlers/web_assets.h — the console's static files, compiled in (build/gen/web_assets.c, made by
 * tools/dev/embed-web.sh from web/). */
#ifndef CV_HANDLERS_WEB_ASSETS_H
#define CV_HANDLERS_WEB_ASSETS_H

#include <stddef.h>

struct web_asset {
	const char *path;  /* "/", "/console.js", ... */
	const char *ctype; /* Content-Type */
	const unsigned char *data;
	size_t len;
};

extern const struct web_asset web_assets[];
extern const unsigned web_asset_count;

#endif
