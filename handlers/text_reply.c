/* handlers/text_reply.c — see text_reply.h. */
#include "handlers/text_reply.h"

#include <jansson.h>

char *text_reply_json(const struct frontend_result *r)
{
	json_t *root = json_object(), *arr = json_array();
	char *out = NULL;
	if (!root || !arr)
		goto done;
	for (size_t i = 0; r && i < r->n; i++) {
		json_t *o = json_object(), *ids = json_array();
		if (!o || !ids) {
			json_decref(o);
			json_decref(ids);
			goto done;
		}
		for (size_t k = 0; k < r->s[i].n_ids; k++)
			json_array_append_new(ids, json_integer(r->s[i].ids[k]));
		json_object_set_new(o, "text", json_string(r->s[i].text));
		json_object_set_new(o, "ids", ids);
		json_array_append_new(arr, o);
	}
	json_object_set(root, "sentences", arr);
	json_object_set_new(root, "lang", json_string(r && r->lang_zh ? "zh" : "en"));
	out = json_dumps(root, JSON_COMPACT);
done:
	json_decref(arr);
	json_decref(root);
	return out;
}
