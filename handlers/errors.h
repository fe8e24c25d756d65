/* handlers/errors.h — the one JSON error envelope, and CV_E* → HTTP mapping.
 *
 * House routes answer {"error":{"code","type","message","field"?},"request_id"};
 * the OpenAI-compatible route answers OpenAI's {"error":{"message","type",
 * "param","code"}}. Messages are plain text; JSON escaping is done here.
 */
#ifndef CV_HANDLERS_ERRORS_H
#define CV_HANDLERS_ERRORS_H

#include "common/buf.h"

enum errors_style { ERRORS_STYLE_HOUSE = 0, ERRORS_STYLE_OPENAI };

/* Short machine type for a status ("invalid_request", "unavailable"...). */
const char *errors_type_for_status(int status, enum errors_style style);
/* HTTP status for a CV_E* code (CV_EINVAL → 400, CV_E2BIG → 413, CV_EFULL →
 * 503, CV_ETIMEDOUT → 504, CV_EBUDGET → 413, CV_ESHUTDOWN/CV_ENOTREADY → 503, CV_ENOTFOUND →
 * 422, CV_EUNSUPPORTED → 400, anything else → 500). */
int errors_status_for_code(int code);
/* Render the envelope into out (reset first). field may be NULL. */
int errors_render(struct buf *out, enum errors_style style, int status, const char *field,
		  const char *message, const char *request_id);

#endif
