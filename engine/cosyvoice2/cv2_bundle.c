/* engine/cosyvoice2/cv2_bundle.c — opening a bundle: the manifest (format, versions, the sha256 of every
 * file) is checked before anything loads, then the frontend, the speakers and the model (docs/cosyvoice2.md
 * §8). */
#include "engine/cosyvoice2/cv2_impl.h"

/* dir + "/" + rel into dst; CV_E2BIG when it does not fit. */
static int cv2_path(char *dst, size_t cap, const char *dir, const char *rel)
{
	int n = snprintf(dst, cap, "%s/%s", dir, rel);
	return n < 0 || (size_t)n >= cap ? CV_E2BIG : CV_OK;
}

static int cv2_json_size(json_t *obj, const char *a, const char *b, size_t *out, const char *path, char *err,
			 size_t errlen)
{
	json_t *v = json_object_get(obj, a);
	if (v && b)
		v = json_object_get(v, b);
	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		cv_errf(err, errlen,
			"%s: missing or bad \"%s%s%s\" (re-export the bundle with tools/export/export.py)",
			path, a, b ? "." : "", b ? b : "");
		return CV_EINVAL;
	}
	*out = (size_t)json_integer_value(v);
	return CV_OK;
}

/* Hash every file the manifest lists and compare sizes and sha256. */
/* 1 (and err set) when the daemon's user may not read `path` of the bundle in
 * `dir`: a permission problem, said as such and naming who the daemon runs as
 * (a bundle exported by another user, 0600 files from older exporters). */
static int cv2_unreadable(const char *path, const char *dir, char *err, size_t errlen)
{
	char name[64] = "?", buf[1024];
	struct passwd pw, *res = NULL;
	uid_t uid;

	if (access(path, R_OK) == 0 || errno != EACCES)
		return 0;
	uid = geteuid();
	if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res)
		cv_strlcpy(name, res->pw_name, sizeof name);
	cv_errf(
	    err, errlen,
	    "%s: permission denied: cosyvoiced runs as uid %d (%s), which cannot read it; make the bundle "
	    "readable to that user (chmod -R a+rX %s; this release's exporter writes 0644 files, 0755 "
	    "directories)",
	    path, (int)uid, name, dir);
	return 1;
}

/* Map the manifest's text_embedding (the LLM's text table, kept out of model.ts) into m->text_table and
 * check it is one (text_vocab_size, hidden_size) tensor in the bundle's dtype, aligned for it; *t is its
 * view. */
static int cv2_text_table_map(struct cv2 *m, json_t *man, const char *mpath, struct safetensors_tensor *t,
			      char *err, size_t errlen)
{
	static const struct {
		const char *name;
		enum safetensors_dtype dt;
	} kinds[] = {{"fp32", SAFETENSORS_DTYPE_F32},
		     {"fp16", SAFETENSORS_DTYPE_F16},
		     {"bf16", SAFETENSORS_DTYPE_BF16}};
	json_t *te = json_object_get(man, "text_embedding");
	const char *file = json_string_value(json_object_get(te, "file"));
	const char *name = json_string_value(json_object_get(te, "tensor"));
	struct safetensors_limits lim = {CV2_TEXT_TABLE_MAX_BYTES, 0, 1};
	char path[CV2_PATH_MAX];
	size_t rows, cols, i;
	int rc;

	if (!file || !name || !json_object_get(json_object_get(man, "files"), file)) {
		cv_errf(err, errlen,
			"%s: no \"text_embedding\" file listed (re-export the bundle with "
			"tools/export/export.py)",
			mpath);
		return CV_EINVAL;
	}
	if ((rc = cv2_json_size(man, "tokens", "text_vocab_size", &rows, mpath, err, errlen)) != CV_OK ||
	    (rc = cv2_json_size(man, "llm", "hidden_size", &cols, mpath, err, errlen)) != CV_OK)
		return rc;
	if (cv2_path(path, sizeof path, m->dir, file) != CV_OK) {
		cv_errf(err, errlen, "bundle directory name too long");
		return CV_E2BIG;
	}
	rc = safetensors_map(path, &lim, &m->text_table, err, errlen);
	if (rc != CV_OK)
		return rc;
	rc = safetensors_find(m->text_table, name, t, err, errlen);
	if (rc != CV_OK) {
		cv_errf(err, errlen,
			"%s: no tensor '%s' (the manifest's text_embedding.tensor); re-export "
			"the bundle",
			path, name);
		return CV_EINVAL;
	}
	for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (strcmp(kinds[i].name, m->dtype) == 0)
			break;
	if (i == sizeof kinds / sizeof kinds[0] || t->dtype != kinds[i].dt || t->ndim != 2 ||
	    t->shape[0] != (int64_t)rows || t->shape[1] != (int64_t)cols) {
		cv_errf(err, errlen,
			"%s: tensor %s is %s [%lld, %lld]; the manifest wants %s [%zu, %zu] (re-export the "
			"bundle)",
			path, name, safetensors_dtype_name(t->dtype), (long long)t->shape[0],
			(long long)(t->ndim > 1 ? t->shape[1] : 0), m->dtype, rows, cols);
		return CV_EINVAL;
	}
	if ((uintptr_t)t->data % safetensors_dtype_size(t->dtype) != 0) {
		cv_errf(err, errlen, "%s: tensor data not aligned to its %zu-byte elements", path,
			safetensors_dtype_size(t->dtype));
		return CV_EINVAL;
	}
	return CV_OK;
}

static int cv2_check_files(const char *dir, json_t *files, const char *mpath, char *err, size_t errlen)
{
	const char *rel;
	json_t *info;
	char path[CV2_PATH_MAX], hex[SHA256_HEX_LEN + 1], herr[256];

	if (!json_is_object(files) || json_object_size(files) == 0) {
		cv_errf(err, errlen,
			"%s: no \"files\" table (re-export the bundle with tools/export/export.py)", mpath);
		return CV_EINVAL;
	}
	json_object_foreach(files, rel, info)
	{
		const char *want = json_string_value(json_object_get(info, "sha256"));
		json_t *bytes = json_object_get(info, "bytes");
		struct stat st;
		int rc;

		if (strstr(rel, "..") || rel[0] == '/') {
			cv_errf(err, errlen, "%s: file entry '%s' leaves the bundle", mpath, rel);
			return CV_EINVAL;
		}
		if (cv2_path(path, sizeof path, dir, rel) != CV_OK || stat(path, &st) != 0) {
			if (errno == EACCES && cv2_unreadable(dir, dir, err, errlen))
				return CV_EIO;
			cv_errf(
			    err, errlen,
			    "missing file: %s (the bundle is incomplete: re-export it with `make bundle`)",
			    path);
			return CV_EIO;
		}
		if (cv2_unreadable(path, dir, err, errlen))
			return CV_EIO;
		if (json_is_integer(bytes) && (json_int_t)st.st_size != json_integer_value(bytes)) {
			cv_errf(
			    err, errlen,
			    "size mismatch: %s has %lld bytes, the manifest says %lld (file changed after "
			    "export: re-export the bundle)",
			    path, (long long)st.st_size, (long long)json_integer_value(bytes));
			return CV_EINVAL;
		}
		rc = sha256_file_hex(path, hex, herr, sizeof herr);
		if (rc != CV_OK) {
			cv_errf(err, errlen, "%s", herr);
			return rc;
		}
		if (!want || strcmp(want, hex) != 0) {
			cv_errf(
			    err, errlen,
			    "sha256 mismatch: %s (manifest %.12s..., file %.12s...): the file changed after "
			    "export; re-export the bundle (make bundle) or restore the file",
			    path, want ? want : "(none)", hex);
			return CV_EINVAL;
		}
	}
	return CV_OK;
}

static void cv2_speaker_clear(struct cv2_speaker *s)
{
	free(s->id);
	free(s->name);
	if (s->owner) {
		free(s->prompt_text);
		free(s->prompt_tokens);
		free(s->prompt_mel);
		free(s->embedding);
	}
	memset(s, 0, sizeof *s);
}

static int cv2_speaker_load(const struct cv2 *m, const char *name, const char *path, struct cv2_speaker *s,
			    char *err, size_t errlen)
{
	char e2[256];
	struct safetensors *st = NULL;
	int64_t shape[SAFETENSORS_MAX_DIMS];
	int64_t any1[1] = {-1}, mel_shape[2] = {-1, (int64_t)m->mel_bins},
		emb_shape[1] = {(int64_t)m->spk_dim};
	const char *fmt;
	int rc;

	memset(s, 0, sizeof *s);
	s->owner = 1;
	rc = safetensors_open(path, NULL, &st, e2, sizeof e2);
	if (rc != CV_OK)
		goto fail;
	fmt = safetensors_metadata(st, "format");
	if (!fmt || strcmp(fmt, "cosyvoiced-speaker") != 0) {
		snprintf(e2, sizeof e2, "not a cosyvoiced-speaker file (metadata format '%s')",
			 fmt ? fmt : "");
		rc = CV_EINVAL;
		goto fail;
	}
	rc = safetensors_read_i32(st, "prompt_text", 1, any1, &s->prompt_text, shape, e2, sizeof e2);
	if (rc != CV_OK)
		goto fail;
	s->n_prompt_text = (size_t)shape[0];
	rc = safetensors_read_i32(st, "prompt_speech_tokens", 1, any1, &s->prompt_tokens, shape, e2,
				  sizeof e2);
	if (rc != CV_OK)
		goto fail;
	s->n_prompt_tokens = (size_t)shape[0];
	rc = safetensors_read_f32(st, "prompt_mel", 2, mel_shape, &s->prompt_mel, shape, e2, sizeof e2);
	if (rc != CV_OK)
		goto fail;
	s->n_prompt_mel = (size_t)shape[0];
	rc = safetensors_read_f32(st, "embedding", 1, emb_shape, &s->embedding, shape, e2, sizeof e2);
	if (rc != CV_OK)
		goto fail;
	if (s->n_prompt_mel != 2 * s->n_prompt_tokens) {
		snprintf(e2, sizeof e2, "prompt_mel has %zu frames for %zu prompt tokens (want 2 per token)",
			 s->n_prompt_mel, s->n_prompt_tokens);
		rc = CV_EINVAL;
		goto fail;
	}
	for (size_t i = 0; i < s->n_prompt_tokens; i++) {
		if (s->prompt_tokens[i] < 0 || (size_t)s->prompt_tokens[i] >= SAMPLER_SPEECH_TOKENS) {
			snprintf(e2, sizeof e2, "prompt speech token %d out of range", s->prompt_tokens[i]);
			rc = CV_EINVAL;
			goto fail;
		}
	}
	s->sft = s->n_prompt_tokens == 0;
	s->name = xstrdup(name);
	s->id = xstrdup(name);
	safetensors_free(st);
	return CV_OK;
fail:
	cv_errf(err, errlen, "speaker '%s' (%s): %s (re-add it with tools/export/add_speaker.py)", name, path,
		e2);
	safetensors_free(st);
	cv2_speaker_clear(s);
	return rc;
}

static int cv2_speaker_cmp(const void *a, const void *b)
{
	const struct cv2_speaker *x = a, *y = b;
	return strcmp(x->id, y->id);
}

static void cv2_voices_free(struct cv2_speaker *spk, size_t n, struct engine_speaker *espk)
{
	for (size_t i = 0; i < n; i++)
		cv2_speaker_clear(&spk[i]);
	free(spk);
	free(espk);
}

struct cv2_voice_set {
	struct cv2_speaker *spk;
	struct engine_speaker *espk;
	size_t n, cap, default_spk;
	char first_full[CV2_PATH_MAX]; /* first voice with a full prompt, in load order */
};

/* Load one voice into the set (replacing one of the same id: a voices_dir
 * voice overrides a bundle voice of the same name). */
static int cv2_set_add(const struct cv2 *m, struct cv2_voice_set *v, const char *id, const char *path,
		       int from_dir, char *err, size_t errlen)
{
	struct cv2_speaker s;
	size_t i;
	int rc = cv2_speaker_load(m, id, path, &s, err, errlen);
	if (rc != CV_OK)
		return rc;
	for (i = 0; i < v->n && strcmp(v->spk[i].id, id) != 0; i++)
		;
	if (i == v->n) {
		if (v->n == v->cap) {
			v->cap = v->cap ? 2 * v->cap : 16;
			v->spk = xrealloc(v->spk, v->cap * sizeof *v->spk);
		}
		v->n++;
	} else {
		log_info("cosyvoice2", "voice '%s' from %s replaces the bundle's", id, path);
		cv2_speaker_clear(&v->spk[i]);
	}
	s.from_dir = from_dir;
	v->spk[i] = s;
	if (!v->first_full[0] && !s.sft)
		cv_strlcpy(v->first_full, id, sizeof v->first_full);
	return CV_OK;
}

static int cv2_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The voices of voices_dir: <id>.safetensors, id as engine_voice_id_valid()
 * allows, in name order. At most max_voices files. */
static int cv2_set_add_dir(const struct cv2 *m, struct cv2_voice_set *v, char *err, size_t errlen)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL, path[CV2_PATH_MAX + 300];
	size_t n = 0, cap = 0;
	int rc = CV_OK;

	if (!m->voices_dir[0])
		return CV_OK;
	d = opendir(m->voices_dir);
	if (!d) {
		if (errno == ENOENT)
			return CV_OK; /* created by the first PUT */
		cv_errf(err, errlen, "voices_dir %s: %s", m->voices_dir, strerror(errno));
		return CV_EIO;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name), sfx = sizeof CV2_VOICE_SUFFIX - 1;
		char id[ENGINE_VOICE_ID_MAX + 1];
		if (len <= sfx || strcmp(de->d_name + len - sfx, CV2_VOICE_SUFFIX) != 0 ||
		    len - sfx > ENGINE_VOICE_ID_MAX)
			continue; /* temporary files of a PUT in progress start with '.' and are skipped too
				   */
		memcpy(id, de->d_name, len - sfx);
		id[len - sfx] = '\0';
		if (!engine_voice_id_valid(id))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			names = xrealloc(names, cap * sizeof *names);
		}
		names[n++] = xstrdup(id);
	}
	closedir(d);
	if (n > m->max_voices) {
		cv_errf(err, errlen, "voices_dir %s holds %zu voices; max_voices is %zu", m->voices_dir, n,
			m->max_voices);
		rc = CV_E2BIG;
	}
	if (n)
		qsort(names, n, sizeof *names, cv2_name_cmp);
	for (size_t i = 0; rc == CV_OK && i < n; i++) {
		snprintf(path, sizeof path, "%s/%s%s", m->voices_dir, names[i], CV2_VOICE_SUFFIX);
		rc = cv2_set_add(m, v, names[i], path, 1, err, errlen);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* Build the voice set from the manifest's speakers and voices_dir, and pick
 * the default voice: the default_speaker setting, else the manifest's
 * "default_speaker", else (older bundles) the first voice with a full prompt
 * in manifest order, else the first voice. Load order, never the sorted
 * order, so adding a voice never moves it. On failure nothing is kept. */
static int cv2_voices_build(const struct cv2 *m, json_t *man, struct cv2_voice_set *v, char *err,
			    size_t errlen)
{
	json_t *spk = json_object_get(man, "speakers"), *rel;
	const char *man_default = json_string_value(json_object_get(man, "default_speaker"));
	const char *name, *chosen;
	char path[CV2_PATH_MAX];
	size_t base;
	int rc = CV_OK;

	memset(v, 0, sizeof *v);
	if (spk && !json_is_object(spk)) {
		cv_errf(err, errlen, "%s/manifest.json: \"speakers\" is not an object", m->dir);
		return CV_EINVAL;
	}
	json_object_foreach(spk, name, rel)
	{
		if (!json_is_string(rel)) {
			cv_errf(err, errlen, "%s/manifest.json: speaker '%s' has no file", m->dir, name);
			rc = CV_EINVAL;
			goto fail;
		}
		if (cv2_path(path, sizeof path, m->dir, json_string_value(rel)) != CV_OK) {
			cv_errf(err, errlen, "speaker '%s': path too long", name);
			rc = CV_E2BIG;
			goto fail;
		}
		if ((rc = cv2_set_add(m, v, name, path, 0, err, errlen)) != CV_OK)
			goto fail;
	}
	if ((rc = cv2_set_add_dir(m, v, err, errlen)) != CV_OK)
		goto fail;
	if (v->n == 0) {
		cv_errf(err, errlen,
			"%s/manifest.json: the bundle has no speakers (add one with "
			"tools/export/add_speaker.py%s)",
			m->dir, m->voices_dir[0] ? " or PUT /v1/speakers/{id}" : "");
		rc = CV_EINVAL;
		goto fail;
	}
	chosen = v->first_full[0] ? v->first_full : v->spk[0].id;
	if (man_default && man_default[0]) {
		if (!json_object_get(spk, man_default)) {
			cv_errf(err, errlen,
				"%s/manifest.json: default_speaker '%s' is not one of the bundle's speakers "
				"(set it with tools/export/add_speaker.py --default NAME)",
				m->dir, man_default);
			rc = CV_EINVAL;
			goto fail;
		}
		chosen = man_default;
	}
	if (m->default_setting[0])
		chosen = m->default_setting;
	{
		/* chosen points into v->first_full, the manifest or the setting: all outlive this */
		/* Cross-lingual variants of the zero-shot voices share the arrays. */
		base = v->n;
		v->spk = xrealloc(v->spk, (2 * base + 1) * sizeof *v->spk);
		for (size_t i = 0; i < base; i++) {
			struct cv2_speaker *s = &v->spk[i], *x;
			size_t len;
			if (s->sft)
				continue;
			x = &v->spk[v->n++];
			*x = *s;
			x->owner = 0;
			x->cross_lingual = 1;
			x->name = xstrdup(s->name);
			len = strlen(s->name) + sizeof COSYVOICE2_XL_SUFFIX;
			x->id = xmalloc(len);
			snprintf(x->id, len, "%s%s", s->name, COSYVOICE2_XL_SUFFIX);
		}
		qsort(v->spk, v->n, sizeof *v->spk, cv2_speaker_cmp);
		v->espk = xcalloc(v->n, sizeof *v->espk);
		v->default_spk = v->n;
		for (size_t i = 0; i < v->n; i++) {
			v->espk[i].id = v->spk[i].id;
			v->espk[i].name = v->spk[i].id;
			v->espk[i].language = "multi";
			v->espk[i].source = v->spk[i].from_dir ? "voices_dir" : "bundle";
			if (strcmp(v->spk[i].id, chosen) == 0)
				v->default_spk = i;
		}
		if (v->default_spk == v->n) {
			cv_errf(err, errlen, "default speaker '%s' is not in the bundle %s%s%s", chosen,
				m->dir, m->voices_dir[0] ? " or in voices_dir " : "", m->voices_dir);
			rc = CV_ENOTFOUND;
			goto fail;
		}
	}
	return CV_OK;
fail:
	cv2_voices_free(v->spk, v->n, v->espk);
	memset(v, 0, sizeof *v);
	return rc;
}

static void cv2_voices_take(struct cv2 *m, struct cv2_voice_set *v)
{
	cv2_voices_free(m->spk, m->n_spk, m->espk);
	m->spk = v->spk;
	m->espk = v->espk;
	m->n_spk = v->n;
	m->default_spk = v->default_spk;
	memset(v, 0, sizeof *v);
}

/* The "files" entries of the manifest's speakers, to re-check their hashes
 * at a reload (the model file is checked once, at open). */
static json_t *cv2_speaker_files(json_t *man)
{
	json_t *files = json_object_get(man, "files"), *out = json_object(), *rel;
	const char *name;
	json_object_foreach(json_object_get(man, "speakers"), name, rel)
	{
		const char *r = json_string_value(rel);
		if (r)
			json_object_set(out, r,
					json_object_get(files, r) ? json_object_get(files, r) : json_null());
	}
	return out;
}

int cv2_check_voice(const struct cv2 *m, const char *path, char *err, size_t errlen)
{
	struct cv2_speaker s;
	int rc = cv2_speaker_load(m, "(new voice)", path, &s, err, errlen);
	if (rc == CV_OK)
		cv2_speaker_clear(&s);
	return rc;
}

int cv2_reload_voices(struct cv2 *m, char *err, size_t errlen)
{
	char mpath[CV2_PATH_MAX];
	json_error_t je;
	json_t *man, *files;
	struct cv2_voice_set v;
	size_t before = m->n_spk;
	int rc;

	if (cv2_path(mpath, sizeof mpath, m->dir, "manifest.json") != CV_OK) {
		cv_errf(err, errlen, "bundle directory name too long");
		return CV_E2BIG;
	}
	man = json_load_file(mpath, JSON_REJECT_DUPLICATES, &je);
	if (!man || !json_is_object(man)) {
		cv_errf(err, errlen, "%s: invalid JSON (line %d: %s)", mpath, je.line, je.text);
		json_decref(man);
		return CV_EINVAL;
	}
	files = cv2_speaker_files(man);
	rc = cv2_check_files(m->dir, files, mpath, err, errlen);
	json_decref(files);
	if (rc == CV_OK)
		rc = cv2_voices_build(m, man, &v, err, errlen);
	json_decref(man);
	if (rc != CV_OK)
		return rc;
	cv2_voices_take(m, &v);
	log_info("cosyvoice2", "voices reloaded: %zu ids (%zu before), default '%s'", m->n_spk, before,
		 m->spk[m->default_spk].id);
	return CV_OK;
}

const struct cv2_speaker *cv2_speaker_find(const struct cv2 *m, const char *id)
{
	if (!id || !id[0])
		return &m->spk[m->default_spk];
	for (size_t i = 0; i < m->n_spk; i++)
		if (strcmp(m->spk[i].id, id) == 0)
			return &m->spk[i];
	for (size_t i = 0; i < m->n_spk; i++)
		if (strcasecmp(m->spk[i].id, id) == 0)
			return &m->spk[i];
	return NULL;
}

void cv2_free(struct cv2 *m)
{
	if (!m)
		return;
	torch_runtime_free(m->rt);
	safetensors_free(m->text_table);
	frontend_free(m->fe);
	cv2_voices_free(m->spk, m->n_spk, m->espk);
	free(m->logp);
	cv2_hift_cache_free(&m->hc);
	free(m);
}

int cv2_open(const struct engine_config *cfg, struct cv2 **out, char *err, size_t errlen)
{
	char mpath[CV2_PATH_MAX], path[CV2_PATH_MAX];
	json_error_t je;
	json_t *man = NULL, *v;
	struct cv2 *m = NULL;
	struct safetensors_tensor table;
	const char *s, *dtype;
	size_t fv;
	int rc = CV_EINVAL;
	int64_t t0 = clock_now_ns(), t1;

	*out = NULL;
	if (!cfg || !cfg->model_dir || !cfg->model_dir[0]) {
		cv_errf(err, errlen,
			"cosyvoice2 needs a bundle directory (--model-dir DIR; make one with `make bundle`)");
		return CV_EINVAL;
	}
	backend_report_stage(cfg, "checking the bundle");
	m = xcalloc(1, sizeof *m);
	cv_strlcpy(m->dir, cfg->model_dir, sizeof m->dir);
	if (cv2_path(mpath, sizeof mpath, m->dir, "manifest.json") != CV_OK) {
		cv_errf(err, errlen, "bundle directory name too long");
		goto fail;
	}
	{
		struct stat st;
		if (stat(m->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
			cv_errf(err, errlen, "bundle directory %s: %s", m->dir,
				errno ? strerror(errno) : "not a directory");
			rc = CV_EIO;
			goto fail;
		}
		if (stat(mpath, &st) != 0) {
			rc = CV_EIO;
			if (cv2_unreadable(mpath, m->dir, err, errlen))
				goto fail;
			cv_errf(err, errlen,
				"missing file: %s (not a CosyVoice2 bundle: export one with `make bundle "
				"SRC=<model dir> OUT=%s`)",
				mpath, m->dir);
			goto fail;
		}
	}
	if (cv2_unreadable(mpath, m->dir, err, errlen)) {
		rc = CV_EIO;
		goto fail;
	}
	man = json_load_file(mpath, JSON_REJECT_DUPLICATES, &je);
	if (!man || !json_is_object(man)) {
		cv_errf(err, errlen, "%s: invalid JSON (line %d: %s); re-export the bundle", mpath, je.line,
			je.text);
		goto fail;
	}
	s = json_string_value(json_object_get(man, "format"));
	v = json_object_get(man, "format_version");
	if (!s || strcmp(s, COSYVOICE2_FORMAT) != 0) {
		cv_errf(err, errlen,
			"%s: format '%s' is not %s (not a bundle written by tools/export/export.py)", mpath,
			s ? s : "(none)", COSYVOICE2_FORMAT);
		goto fail;
	}
	if (!json_is_integer(v) || json_integer_value(v) != COSYVOICE2_FORMAT_VERSION) {
		cv_errf(err, errlen,
			"%s: bundle format_version %lld; this daemon reads version %d: re-export the bundle "
			"with this release's tools/export/export.py (make bundle)",
			mpath, json_is_integer(v) ? (long long)json_integer_value(v) : -1LL,
			COSYVOICE2_FORMAT_VERSION);
		goto fail;
	}
	s = json_string_value(json_object_get(man, "torch_version"));
	{
		const char *have = torch_runtime_build_version();
		if (!s || (have[0] && !torch_runtime_version_matches(s))) {
			cv_errf(
			    err, errlen,
			    "%s: written by torch %s but this daemon's libtorch plugin is built for torch "
			    "%s: re-export the bundle with that torch (make bundle ..., or the host's "
			    "python3 tools/export/export.py)",
			    mpath, s ? s : "(unknown)", have);
			goto fail;
		}
	}
	dtype = json_string_value(json_object_get(man, "dtype"));
	if (!dtype ||
	    (strcmp(dtype, "fp32") != 0 && strcmp(dtype, "fp16") != 0 && strcmp(dtype, "bf16") != 0)) {
		cv_errf(err, errlen, "%s: dtype '%s' (want fp32, fp16 or bf16)", mpath,
			dtype ? dtype : "(none)");
		goto fail;
	}
	snprintf(m->dtype, sizeof m->dtype, "%s", dtype);
	if ((rc = cv2_json_size(man, "sample_rate", NULL, &fv, mpath, err, errlen)) != CV_OK)
		goto fail;
	m->sample_rate = (int)fv;
	if ((rc = cv2_json_size(man, "tokens", "speech_vocab", &m->vocab, mpath, err, errlen)) != CV_OK ||
	    (rc = cv2_json_size(man, "flow", "mel_bins", &m->mel_bins, mpath, err, errlen)) != CV_OK ||
	    (rc = cv2_json_size(man, "flow", "spk_embed_dim", &m->spk_dim, mpath, err, errlen)) != CV_OK ||
	    (rc = cv2_json_size(man, "hift", "samples_per_frame", &m->samples_per_frame, mpath, err,
				errlen)) != CV_OK ||
	    (rc = cv2_json_size(man, "hift", "nb_harmonics", &m->nb_harmonics, mpath, err, errlen)) != CV_OK)
		goto fail;
	rc = CV_EINVAL;
	if (m->vocab != SAMPLER_VOCAB || m->samples_per_frame != CV2_STREAM_SAMPLES_PER_FRAME ||
	    m->sample_rate != 24000) {
		cv_errf(err, errlen,
			"%s: speech_vocab %zu / samples_per_frame %zu / sample_rate %d are not CosyVoice2's "
			"(6564 / 480 / 24000)",
			mpath, m->vocab, m->samples_per_frame, m->sample_rate);
		goto fail;
	}
	v = json_object_get(json_object_get(json_object_get(man, "tokens"), "text_special"),
			    COSYVOICE2_ENDOFPROMPT);
	m->endofprompt_id = json_is_integer(v) ? (int32_t)json_integer_value(v) : 151646;
	s = json_string_value(json_object_get(man, "model"));
	if (!s || !json_object_get(json_object_get(man, "files"), s)) {
		cv_errf(err, errlen, "%s: the model file is not listed in \"files\"; re-export the bundle",
			mpath);
		goto fail;
	}
	rc = cv2_check_files(m->dir, json_object_get(man, "files"), mpath, err, errlen);
	if (rc != CV_OK)
		goto fail;
	rc = cv2_text_table_map(m, man, mpath, &table, err, errlen);
	if (rc != CV_OK)
		goto fail;

	sampler_params_default(&m->sp);
	{
		json_t *smp = json_object_get(json_object_get(man, "llm"), "sampling");
		json_t *x;
		if ((x = json_object_get(smp, "top_p")) && json_is_number(x))
			m->sp.top_p = json_number_value(x);
		if ((x = json_object_get(smp, "top_k")) && json_is_integer(x))
			m->sp.top_k = (int)json_integer_value(x);
		if ((x = json_object_get(smp, "win_size")) && json_is_integer(x))
			m->sp.win_size = (int)json_integer_value(x);
		if ((x = json_object_get(smp, "tau_r")) && json_is_number(x))
			m->sp.tau_r = json_number_value(x);
	}

	backend_report_stage(cfg, "loading the text frontend and speakers");
	{
		struct frontend_limits lim = {0, 0, cfg->split_max_tokens};
		rc = frontend_open_dir(m->dir, &lim, &m->fe, err, errlen);
		if (rc != CV_OK)
			goto fail;
	}
	cv_strlcpy(m->default_setting, cfg->default_speaker ? cfg->default_speaker : "",
		   sizeof m->default_setting);
	cv_strlcpy(m->voices_dir, cfg->voices_dir ? cfg->voices_dir : "", sizeof m->voices_dir);
	m->max_voices = cfg->max_voices ? cfg->max_voices : CV2_DEFAULT_MAX_VOICES;
	{
		struct cv2_voice_set voices;
		rc = cv2_voices_build(m, man, &voices, err, errlen);
		if (rc != CV_OK)
			goto fail;
		cv2_voices_take(m, &voices);
	}

	m->logp = xmalloc(m->vocab * sizeof *m->logp);
	cv2_hift_cache_init(&m->hc, m->mel_bins);
	{
		struct torch_runtime_config rc_cfg = {0};
		const char *g;
		if (cv2_path(path, sizeof path, m->dir, json_string_value(json_object_get(man, "model"))) !=
		    CV_OK) {
			cv_errf(err, errlen, "bundle directory name too long");
			rc = CV_E2BIG;
			goto fail;
		}
		rc_cfg.model_path = path;
		rc_cfg.device = cfg->device && cfg->device[0] ? cfg->device : "cpu";
		rc_cfg.threads = cfg->threads;
		rc_cfg.torch_lib = cfg->torch_lib;
		rc_cfg.dtype = dtype;
		rc_cfg.allow_half_cpu = cfg->cpu_half;
		rc_cfg.cuda_memory_limit_mb = cfg->cuda_memory_limit_mb;
		rc_cfg.cuda_graph = cfg->cuda_graph;
		rc_cfg.text_table = table.data;
		rc_cfg.text_rows = (size_t)table.shape[0];
		rc_cfg.text_cols = (size_t)table.shape[1];
		/* test-only switches: CVTEST_* (never COSYVOICED_*, which the config owns) */
		g = getenv("CVTEST_JIT_OPTIMIZE");
		rc_cfg.jit_optimize = g && strcmp(g, "1") == 0;
		g = getenv("CVTEST_STATIC_DECODE");
		rc_cfg.static_decode = g && strcmp(g, "1") == 0;
		rc_cfg.fault = getenv("CVTEST_FAULT");
		rc_cfg.cuda_versions = getenv("CVTEST_CUDA_VERSIONS");
		rc_cfg.cpu_bf16 = getenv("CVTEST_CPU_BF16");
		g = getenv("CVTEST_CPU_PACK");
		rc_cfg.cpu_pack = !(g && strcmp(g, "0") == 0);
		backend_report_stage(cfg, "loading libtorch and the model weights");
		rc = torch_runtime_open(&rc_cfg, &m->rt, err, errlen);
		if (rc != CV_OK)
			goto fail;
	}
	m->max_positions = cfg->llm_max_positions ? cfg->llm_max_positions : CV2_DEFAULT_MAX_POSITIONS;
	if (cfg->memory_budget_mb < 0) {
		/* auto: a 4 GB card keeps ~1 GB for the CUDA context (and never more than the
		 * allocator cap); on the CPU, leave 10% of RAM */
		long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
		double cuda = CV2_AUTO_BUDGET_CUDA_MB;
		if (cfg->cuda_memory_limit_mb > 0 && (double)cfg->cuda_memory_limit_mb < cuda)
			cuda = (double)cfg->cuda_memory_limit_mb;
		m->budget = torch_runtime_is_cuda(m->rt) ? cuda * CV2_MIB
			    : pages > 0 && psz > 0	 ? 0.9 * (double)pages * (double)psz
							 : 0;
	} else {
		m->budget = (double)cfg->memory_budget_mb * CV2_MIB;
	}
	backend_report_stage(cfg, "allocating the KV cache");
	rc = torch_runtime_llm_begin(m->rt, m->max_positions, err, errlen);
	if (rc != CV_OK)
		goto fail;
	backend_report_stage(cfg, "probing memory use");
	rc = cv2_probe_memory(m, err, errlen);
	if (rc != CV_OK)
		goto fail;
	torch_runtime_fault_arm(m->rt);
	t1 = clock_now_ns();
	snprintf(m->describe, sizeof m->describe,
		 "CosyVoice2 bundle %.120s (%s, %s, libtorch %s, %zu speakers)", m->dir, dtype,
		 torch_runtime_device(m->rt), torch_runtime_version(), m->n_spk);
	log_info("cosyvoice2", "loaded %s in %.0f ms; LLM decode: %s; KV cache %zu positions", m->describe,
		 clock_ms_between(t0, t1), torch_runtime_decode_mode(m->rt), m->max_positions);
	json_decref(man);
	*out = m;
	return CV_OK;
fail:
	json_decref(man);
	cv2_free(m);
	return rc;
}
