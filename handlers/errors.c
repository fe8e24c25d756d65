/* handlers/errors.c — error envelopes built with jansson (escaping for free). */
#include "handlers/errors.h"

#include <jansson.h>
#include <stdlib.h>

#include "common/err.h"

const char *errors_type_for_status(int status, enum errors_style style)
{
	if (style == ERRORS_STYLE_OPENAI) {
		if (status == 401)
			return "authentication_error";
		if (status == 404)
			return "not_found_error";
		if (status == 429 || status == 503)
			return "server_overloaded";
		if (status >= 500)
			return "server_error";
		return "invalid_request_error";
	}
	switch (status) {
	case 400: return "invalid_request";
	case 401: return "unauthorized";
	case 403: return "forbidden";
	case 404: return "not_found";
	case 405: return "method_not_allowed";
	case 413: return "payload_too_large";
	case 415: return "unsupported_media_type";
	case 422: return "unprocessable";
	case 503: return "unavailable";
	case 504: return "deadline_exceeded";
	default: return status >= 500 ? "internal" : "invalid_request";
	}
}

int errors_status_for_code(int code)
{
	switch (code) {
	case CV_EINVAL:
	case CV_EUNSUPPORTED: return 400;
	case CV_E2BIG:
	case CV_EBUDGET: return 413;
	case CV_ENOTFOUND: return 422;
	case CV_EFULL:
	case CV_ESHUTDOWN:
	case CV_ENOTREADY: return 503;
	case CV_ETIMEDOUT: return 504;
	default: return 500;
	}
}

/* json_string() refuses invalid UTF-8: never let that turn into a failure. */
static json_t *errors_json_text(const char *s)
{
	json_t *j = json_string(s ? s : "");
	return j ? j : json_string("(text not valid UTF-8)");
}

int errors_render(struct buf *out, enum errors_style style, int status, const char *field,
		  const char *message, const char *request_id)
{
	json_t *err = json_object(), *root = json_object();
	char *text;
	int rc;

	buf_reset(out);
	if (!err || !root) {
		json_decref(err);
		json_decref(root);
		return CV_ENOMEM;
	}
	if (style == ERRORS_STYLE_OPENAI) {
		json_object_set_new(err, "message", errors_json_text(message));
		json_object_set_new(err, "type", json_string(errors_type_for_status(status, style)));
		json_object_set_new(err, "param", field ? errors_json_text(field) : json_null());
		json_object_set_new(err, "code", json_null());
	} else {
		json_object_set_new(err, "code", json_integer(status));
		json_object_set_new(err, "type", json_string(errors_type_for_status(status, style)));
		json_object_set_new(err, "message", errors_json_text(message));
		if (field)
			json_object_set_new(err, "field", errors_json_text(field));
	}
	json_object_set_new(root, "error", err);
	if (style == ERRORS_STYLE_HOUSE && request_id)
		json_object_set_new(root, "request_id", errors_json_text(request_id));
	text = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(root);
	if (!text)
		return CV_ENOMEM;
	rc = buf_append_str(out, text);
	if (rc == CV_OK)
		rc = buf_append(out, "\n", 1);
	free(text);
	return rc;
}
