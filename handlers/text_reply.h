/* handlers/text_reply.h — the HTTP reply of POST /v1/text/normalize.
 *
 * The text frontend (engine/text/frontend.h) knows sentences and token ids;
 * the shape of the reply is the HTTP layer's business, so it lives here.
 */
#ifndef CV_HANDLERS_TEXT_REPLY_H
#define CV_HANDLERS_TEXT_REPLY_H

#include "engine/text/frontend.h"

/* {"sentences":[{"text":"...","ids":[...]},...],"lang":"zh"|"en"} as a
 * malloc'd string, or NULL when out of memory. */
char *text_reply_json(const struct frontend_result *r);

#endif
